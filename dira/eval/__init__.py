"""Evaluation: metric functions shared by training and reporting, and the statistics behind the tables."""
