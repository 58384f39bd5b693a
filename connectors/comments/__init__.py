"""IZIComment: on-site product comment threads (public REST + agents' public replies)."""
