"""The agent desk: canned responses, conversation labels, read positions and the console's
other helpers beyond plain chat (`feature.py`)."""
