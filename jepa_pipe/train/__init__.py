"""Cache-only training of students and predictors (``python -m jepa_pipe train``)."""
