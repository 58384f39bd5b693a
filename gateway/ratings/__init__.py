"""Satisfaction ratings: a visitor rates a resolved conversation (1-5 and an optional comment)."""
