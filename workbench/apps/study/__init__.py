"""``workbench demo``: the whole study on one model (``run``), its configuration (``config``), its stages
(``stages``), its folder and results (``files``), its figures (``figures``) and its report (``report``)."""

from workbench.apps.study.config import StudyConfig
from workbench.apps.study.figures import make_figures
from workbench.apps.study.files import StudyFiles, StudyResults
from workbench.apps.study.report import copy_report, write_report
from workbench.apps.study.run import run_study

__all__ = ["StudyConfig", "StudyFiles", "StudyResults", "copy_report", "make_figures", "run_study", "write_report"]
