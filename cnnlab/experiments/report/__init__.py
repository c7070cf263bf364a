"""Reporting: from the runs' stored numbers to the document a student hands in.

* :mod:`.intervals`, :mod:`.stats` -- groups of seeds, means with 95% intervals, differences;
* :mod:`.findings`, :mod:`.measure_text`, :mod:`.frontier` -- sentences and tables per recipe
  (training runs, ``[measure]`` results, Optuna searches);
* :mod:`.wording`, :mod:`.answers` (:mod:`.answers_huji`, :mod:`.answers_more`) -- one
  answer paragraph per sub-question;
* :mod:`.theory` -- the sheets' theory answers (analyzer, ``verify``, errata);
* :mod:`.page`, :mod:`.pdf`, ``templates/`` -- the HTML page and its PDF.
"""
