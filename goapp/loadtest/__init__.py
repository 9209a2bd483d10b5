"""``goapp loadtest``: a WebSocket load generator that speaks goapp's real protocol.

It opens thousands of WebSocket clients against one server (or several instances, one
``--url`` each), makes them play and watch games at a given rate for a bounded time, and
reports action->ack and move->broadcast latency percentiles, messages per second, errors,
and every lost or duplicated event (exit status 1 when there is any). See docs/loadtest.md
for the method and benches/README.md ("Load") for the figures.

* :mod:`goapp.loadtest.wsclient`: the raw-protocol WebSocket client (cheap per message);
* :mod:`goapp.loadtest.setup`: accounts, tokens and games;
* :mod:`goapp.loadtest.scenario`: the run (:func:`run_loadtest`, :class:`LoadConfig`);
* :mod:`goapp.loadtest.stats`: exact percentiles over every sample;
* :mod:`goapp.loadtest.report`: the human summary of the JSON report.
"""

from goapp.loadtest.report import format_report
from goapp.loadtest.scenario import LoadConfig, LoadError, legal_sequence, run_loadtest

__all__ = ["LoadConfig", "LoadError", "format_report", "legal_sequence", "run_loadtest"]
