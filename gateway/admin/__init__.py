"""Administrative use cases shared by the CLI, the demo and the tests."""
