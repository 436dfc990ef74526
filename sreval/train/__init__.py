"""`sreval train`: one readable training loop for the reference ×4 models, with its data pipeline and recipes."""
