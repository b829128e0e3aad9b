"""Scores to figures: verification metrics, paired drops, all-pairs protocol, intervals, the goal."""
