"""The benchmark harness: WebSocket against HTTP, ours against floors and a peer.

``python -m bench`` runs every scenario side by side on this machine, writes
the raw results to ``bench/results/latest.json`` and regenerates
``docs/benchmarks.md`` with its charts under ``docs/bench/``. ``--smoke`` runs
every scenario with tiny sizes into a temporary directory, to prove the
harness works; it says nothing about speed.

Servers run as child processes (`bench.serve`), load and idle clients in
other child processes (`bench.worker`), so each side's CPU and memory can be
read from ``/proc`` and the two cores are shared the way a real deployment
shares them. Everything stays on 127.0.0.1 and every loop is bounded.
"""
