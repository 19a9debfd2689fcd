"""Views only: they present what the core returns and never call MLflow themselves."""
