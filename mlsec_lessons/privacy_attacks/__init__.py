"""Privacy attacks and auditing, measured on real models (lesson 05).

* ``membership``: the loss-threshold attack, ART's learned black-box attack, and the report every
  attack gets: AUC and TPR at low FPR
* ``shadows``: many models trained on random halves of a data pool, with their outputs cached
* ``lira``: the Likelihood Ratio Attack, online and offline
* ``reconstruction``: ART's database reconstruction against plain and DP models
* ``auditing``: an empirical lower bound on epsilon with Clopper-Pearson intervals
* ``plots``: the log-log ROC curve
"""
