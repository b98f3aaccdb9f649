# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.
"""The agent's Prometheus metrics (``[agent] metrics_port``, off by default).

Per GPU, from the last cycle's inventory (a GPU that is gone from it leaves
no stale series behind):

``gpupt_gpu_state{address,model,state,reason}``
    1 for the GPU's state: ``ready``, ``degraded``, ``unhealthy`` or
    ``cordoned``; ``reason`` says why (empty when ready).
``gpupt_gpu_offered{address}`` / ``gpupt_gpu_held{address}``
    1 when it is in nova's device_spec / held back from new guests.
``gpupt_gpu_isolation{address,isolation}``
    1 for the IOMMU verdict: ``isolated``, ``shared`` or ``unknown``.
``gpupt_gpu_link_speed_gts{address,which}``, ``gpupt_gpu_link_width{...}``
    the PCIe link, ``which`` = ``current`` or ``max``.
``gpupt_gpu_aer_errors_total{address,severity}``
    the kernel's AER counters since boot (``fatal``, ``nonfatal``,
    ``correctable``).

Per cycle:

``gpupt_agent_cycles_total``, ``gpupt_agent_cycle_errors_total{source}``
    cycles run; failures by publisher (or ``discovery``).
``gpupt_agent_cycle_duration_seconds``
    a histogram of cycle durations.
``gpupt_agent_last_success_timestamp_seconds``
    when a cycle last published everything (0: never).
"""

import prometheus_client
from prometheus_client import core

from gpu_passthrough_filter.agent import selection
from gpu_passthrough_filter.inventory import health


def gpu_state(gpu):
    """``(state, reason)`` of a GPU for :data:`gpupt_gpu_state`."""
    if gpu.cordon:
        return 'cordoned', gpu.cordon
    return gpu.health, '; '.join(gpu.health_reasons)


class AgentMetrics:
    """The agent's metrics in their own registry.

    :param registry: a ``CollectorRegistry``; a new one by default (the
        process-wide one would collect them twice in tests).
    """

    def __init__(self, registry=None):
        # NOTE: no "<name>_created" series beside every counter: the agent
        # is its own process, and the creation times say nothing here.
        prometheus_client.disable_created_metrics()
        self.registry = registry or prometheus_client.CollectorRegistry()
        self._inventory = None
        self._choices = {}
        self._server = None
        self.cycles = prometheus_client.Counter(
            'gpupt_agent_cycles', 'Discovery-and-publish cycles run.',
            registry=self.registry)
        self.errors = prometheus_client.Counter(
            'gpupt_agent_cycle_errors', 'Cycles that failed, by publisher '
            '(or discovery).', ['source'], registry=self.registry)
        self.duration = prometheus_client.Histogram(
            'gpupt_agent_cycle_duration_seconds', 'Duration of a cycle.',
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry)
        self.last_success = prometheus_client.Gauge(
            'gpupt_agent_last_success_timestamp_seconds',
            'When a cycle last published everything (0: never).',
            registry=self.registry)
        self.registry.register(_GpuCollector(self))

    def observe_cycle(self, report, seconds, now, include_shared_groups=False,
                      hold_in_placement=False):
        """Record one cycle.

        :param report: its :class:`~.daemon.CycleReport`.
        :param seconds: how long it took.
        :param now: when it ended (seconds since the epoch).
        """
        self.cycles.inc()
        self.duration.observe(seconds)
        for source in report.errors:
            self.errors.labels(source=source).inc()
        if report.ok:
            self.last_success.set(now)
        if report.inventory is not None:
            self._inventory = report.inventory
            self._choices = {
                choice.gpu.address: choice for choice in selection.choose(
                    report.inventory, include_shared_groups,
                    hold_in_placement)}

    def serve(self, port, address='0.0.0.0'):
        """Serve ``/metrics`` on a daemon thread until :meth:`close`."""
        self._server, _thread = prometheus_client.start_http_server(
            port, addr=address, registry=self.registry)

    def close(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def text(self):
        """The exposition text (what a scrape gets)."""
        return prometheus_client.generate_latest(self.registry).decode()


class _GpuCollector:
    """Per-GPU series built from the last inventory at each scrape."""

    def __init__(self, metrics):
        self.metrics = metrics

    def describe(self):
        # NOTE: no description up front: registering must not call
        # collect() before the first cycle.
        return []

    def collect(self):
        families = {
            'state': core.GaugeMetricFamily(
                'gpupt_gpu_state', 'The GPU\'s state (value 1).',
                labels=['address', 'model', 'state', 'reason']),
            'offered': core.GaugeMetricFamily(
                'gpupt_gpu_offered', '1 when the GPU is in nova\'s '
                'device_spec.', labels=['address']),
            'held': core.GaugeMetricFamily(
                'gpupt_gpu_held', '1 when the GPU takes no new guest '
                '(unhealthy or cordoned).', labels=['address']),
            'isolation': core.GaugeMetricFamily(
                'gpupt_gpu_isolation', 'The IOMMU verdict (value 1).',
                labels=['address', 'isolation']),
            'speed': core.GaugeMetricFamily(
                'gpupt_gpu_link_speed_gts', 'PCIe link speed in GT/s.',
                labels=['address', 'which']),
            'width': core.GaugeMetricFamily(
                'gpupt_gpu_link_width', 'PCIe link width in lanes.',
                labels=['address', 'which']),
            'aer': core.CounterMetricFamily(
                'gpupt_gpu_aer_errors', 'PCIe AER errors counted by the '
                'kernel since boot.', labels=['address', 'severity']),
        }
        inventory = self.metrics._inventory
        for gpu in (inventory.gpus if inventory else ()):
            self._add_gpu(families, gpu, inventory.function(gpu.address))
        return list(families.values())

    def _add_gpu(self, families, gpu, function):
        address = gpu.address
        state, reason = gpu_state(gpu)
        families['state'].add_metric([address, gpu.model, state, reason], 1)
        choice = self.metrics._choices.get(address)
        families['offered'].add_metric(
            [address], int(bool(choice and choice.offered)))
        families['held'].add_metric(
            [address], int(selection.held_reason(gpu) is not None))
        families['isolation'].add_metric([address, gpu.isolation], 1)
        if function is None:
            return
        for which, speed, width in (
                ('current', function.cur_link_speed, function.cur_link_width),
                ('max', function.max_link_speed, function.max_link_width)):
            gts = health.link_speed_gts(speed)
            if gts is not None:
                families['speed'].add_metric([address, which], gts)
            if width is not None:
                families['width'].add_metric([address, which], width)
        for severity, count in (('fatal', function.aer_fatal),
                                ('nonfatal', function.aer_nonfatal),
                                ('correctable', function.aer_correctable)):
            if count is not None:
                families['aer'].add_metric([address, severity], count)
