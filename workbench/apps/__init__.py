"""Applications built on the workbench's library: the study behind the demo (``study``), a whole
IFEval-format file evaluated in four conditions (``file_evaluation``), the steering explorer
(``explorer``), speed and memory ratios (``bench``) and the command line (``cli``). They import the
library; the library never imports them."""
