"""clasp-fast's benchmark suite: ``python -m bench`` (or ``clasp-fast-bench``).

In the repository it is the folder ``bench/``; ``pip install`` installs it as the package
``clasp_fast_bench`` (setup.py).  Modules refer to each other relatively and start their
helper processes as ``python -m <this package>.gen``, so both names work.

Layout:

* ``__main__.py``  command line, the run plan, progress, the report files.
* ``profiles.py``  the scenario sizes of the full, ``--quick`` and ``--smoke`` runs.
* ``targets.py``   the servers under test: clasp-fast (1 or N workers), the two
                   ceiling servers, and ``--peer`` (any CLASP router started by a command).
* ``scenarios.py`` the controller side of every scenario (warm-up, measurement, repeats).
* ``gen.py``       a load-generator process (``python -m bench.gen``): subscribers,
                   publishers, the latency prober, the connection storm, idle connections.
* ``ceiling.py``   the ceiling server (``python -m bench.ceiling``).
* ``procs.py``     process groups, CPU pinning, /proc readers, clean-up.
* ``report.py``    Markdown, JSON, the PNG plot and the targets table.
* ``_loadgen.pyx``  the native hot paths (receiving, counting, latency histograms,
                   pre-masked frame blocks, the publisher's send loop, the ceiling server),
                   compiled as ``clasp_fast_bench._loadgen``.
"""
