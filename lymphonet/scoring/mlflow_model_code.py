"""The file MLflow stores with a lymphonet model and runs to build it ("models from code"): the
model is this code plus the export-bundle artifact, never a pickled object
(:mod:`lymphonet.scoring.mlflow_pyfunc`)."""

import mlflow

from lymphonet.scoring.mlflow_pyfunc import load_bundle_for_scoring, predict_frame


class LymphonetPyfunc(mlflow.pyfunc.PythonModel):
    """Manifest DataFrame in (the data contract), score DataFrame out (the score contract)."""

    def load_context(self, context):
        load_bundle_for_scoring(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None):
        return predict_frame(model_input, params)


mlflow.models.set_model(LymphonetPyfunc())
