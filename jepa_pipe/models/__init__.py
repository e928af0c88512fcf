"""Students, predictors and the EMA copy (``register_student`` adds an architecture)."""

from jepa_pipe.models.jepa import Ema, JepaModel  # noqa: F401
from jepa_pipe.models.predictor import Predictor  # noqa: F401
from jepa_pipe.models.students import (  # noqa: F401
    STUDENTS,
    GridMismatch,
    StudentConfig,
    VideoStudent,
    register_student,
)
