"""The model file MLflow stores with each logged best checkpoint ("models from code"; see
`harness.sweep.logged_model`): loading the model runs this file, which names the PythonModel."""

import mlflow.models

from harness.sweep.logged_model import BestCheckpoint

__all__: list[str] = []

mlflow.models.set_model(BestCheckpoint())
