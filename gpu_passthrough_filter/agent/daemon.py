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
"""Discover, publish, repeat: the agent's cycle and its daemon.

One *cycle* reads sysfs once and hands the inventory to every configured
publisher (:func:`run_cycle`). A publisher either publishes all of its
change or raises before writing anything, so a failed cycle never leaves
half a change behind; the publishers are idempotent, so the next cycle
simply tries again. If sysfs cannot be read, nothing is published at all:
the agent never publishes what it did not discover.

:class:`Daemon` (``gpu-passthrough-agent run``) repeats the cycle every
``[agent] interval`` seconds. After a failed cycle it waits with
exponential backoff and jitter (``[agent] backoff_initial`` doubling up to
``[agent] backoff_max``) instead; it never exits on a publishing error.
SIGTERM and SIGINT stop it after the cycle in progress (exit status 0);
SIGHUP reloads the configuration files before the next cycle, keeping the
running configuration when the new one is invalid.
"""

import dataclasses
import os
import random
import signal
import threading
import time
import typing

from oslo_config import cfg
from oslo_log import log as logging
import stevedore

from gpu_passthrough_filter.agent import base
from gpu_passthrough_filter.agent import client
from gpu_passthrough_filter.agent import cordon
from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.agent import metrics
from gpu_passthrough_filter import conf as conf_pkg
from gpu_passthrough_filter.conf import opts as conf_opts
from gpu_passthrough_filter.inventory import health
from gpu_passthrough_filter.inventory import sysfs

LOG = logging.getLogger(__name__)

#: Read when no ``--config-file`` is given and the file exists.
DEFAULT_CONFIG_FILE = '/etc/gpu-passthrough-filter/gpu-passthrough-agent.conf'


def build_conf(config_files=(), config_dirs=()):
    """Load the agent's configuration and check every value now.

    :param config_files: paths, later ones override earlier ones.
    :param config_dirs: directories of ``*.conf`` files, read after them.
    :returns: a new ``ConfigOpts``.
    :raises exception.ConfigError: a file is missing or unparsable, or an
        option has an invalid value.
    """
    conf = cfg.ConfigOpts()
    conf_pkg.register_agent_opts(conf)
    logging.register_options(conf)
    args = []
    for path in config_files:
        args += ['--config-file', path]
    for path in config_dirs:
        args += ['--config-dir', path]
    defaults = []
    if not config_files and os.path.exists(DEFAULT_CONFIG_FILE):
        defaults = [DEFAULT_CONFIG_FILE]
    try:
        conf(args, project='gpu-passthrough-filter',
             prog='gpu-passthrough-agent', default_config_files=defaults)
        _check_values(conf)
    except (cfg.Error, ValueError) as exc:
        raise exception.ConfigError(reason=exc)
    return conf


def _check_values(conf):
    # NOTE: oslo.config converts values when they are first read; reading
    # every option of the agent's groups now turns "interval = soon" into
    # an error at start (or at SIGHUP), not in the middle of a cycle.
    # keystoneauth's plugin options are listed for the sample file but
    # registered only when their plugin loads: skip those.
    for group, opts in conf_opts.list_agent_opts():
        for opt in opts:
            try:
                getattr(conf[group.name], opt.dest)
            except cfg.NoSuchOptError:
                continue


def load_publishers(conf):
    """Build the publishers named in ``[agent] publishers``, in that order.

    :param conf: the agent's ``ConfigOpts``.
    :returns: a ``stevedore.NamedExtensionManager``.
    :raises exception.ConfigError: a name is unknown or a plugin fails to
        load.
    """
    missing = []
    failures = []
    manager = stevedore.NamedExtensionManager(
        base.NAMESPACE, names=conf.agent.publishers, invoke_on_load=True,
        invoke_args=(conf,), name_order=True,
        on_missing_entrypoints_callback=missing.extend,
        on_load_failure_callback=lambda _mgr, ep, exc: failures.append(
            '%s (%s)' % (ep.name, exc)))
    if missing or failures:
        raise exception.ConfigError(
            reason='[agent] publishers: %s' % '; '.join(
                ['unknown publisher %r' % name for name in sorted(missing)]
                + ['cannot load %s' % failure for failure in failures]))
    if not conf.agent.publishers:
        raise exception.ConfigError(reason='[agent] publishers is empty')
    return manager


def discover(conf):
    """Read the host inventory as configured in ``[agent]``.

    The GPUs the operator cordoned (:mod:`.cordon`, in ``[agent]
    state_dir``) are marked as such.

    :raises exception.DiscoveryError: sysfs cannot be read at all.
    :raises exception.ConfigError: ``[agent] extra_gpu_ids`` is malformed.
    :raises exception.CordonFileError: the cordon file cannot be read.
    """
    agent = conf.agent
    try:
        inventory = sysfs.read_inventory(
            agent.sysfs_root, agent.extra_gpu_ids, agent.pci_ids_path,
            hostname=agent.host)
    except sysfs.SysfsUnreadableError as exc:
        raise exception.DiscoveryError(root=agent.sysfs_root, reason=exc)
    except ValueError as exc:
        raise exception.ConfigError(reason='[agent] extra_gpu_ids: %s'
                                    % exc)
    return cordon.apply(inventory, active_cordons(conf))


def active_cordons(conf):
    """The cordons in force, by target; unreadable entries logged.

    :raises exception.CordonFileError: the file cannot be read at all.
    """
    book = cordon.CordonBook(conf.agent.state_dir)
    try:
        cordons = book.active()
    except cordon.CordonError as exc:
        raise exception.CordonFileError(reason=exc)
    for error in book.errors:
        LOG.error('%s', error)
    return cordons


@dataclasses.dataclass
class CycleReport:
    """What one cycle did.

    :param results: publisher name -> :class:`~.base.PublishResult`.
    :param errors: publisher name (or ``"discovery"``) -> the
        :class:`~.exception.PublishError` it raised.
    :param inventory: what discovery read, None when it failed.
    """
    results: typing.Dict[str, base.PublishResult] = dataclasses.field(
        default_factory=dict)
    errors: typing.Dict[str, Exception] = dataclasses.field(
        default_factory=dict)
    inventory: typing.Any = None

    @property
    def ok(self):
        return not self.errors

    @property
    def restart_needed(self):
        return any(r.restart_needed for r in self.results.values())


def run_cycle(conf, manager, discover_fn=discover):
    """Discover once and run every publisher; log and report the outcome.

    :param conf: the agent's ``ConfigOpts``.
    :param manager: publishers, from :func:`load_publishers`.
    :param discover_fn: ``conf -> HostInventory``.
    :returns: a :class:`CycleReport`; never raises a
        :class:`~.exception.PublishError`.
    """
    report = CycleReport()
    try:
        inventory = discover_fn(conf)
    except exception.PublishError as exc:
        LOG.error('Discovery failed, nothing published: %s', exc)
        report.errors['discovery'] = exc
        return report
    report.inventory = inventory
    with client.cycle_deadline(conf.agent.cycle_timeout):
        for extension in manager:
            _publish_one(extension, inventory, report)
    return report


def _publish_one(extension, inventory, report):
    """Run one publisher and record its outcome in ``report``."""
    try:
        result = extension.obj.publish(inventory)
    except exception.PublishError as exc:
        log = LOG.warning if exc.transient else LOG.error
        log('Publisher %(name)s failed: %(error)s',
            {'name': extension.name, 'error': exc})
        report.errors[extension.name] = exc
        return
    except Exception as exc:
        # NOTE: a bug or an answer nobody foresaw must not end the
        # daemon: the cycle reports it and the next one tries again.
        LOG.exception('Publisher %s failed unexpectedly', extension.name)
        report.errors[extension.name] = exception.PublishError(
            reason='unexpected %s: %s' % (type(exc).__name__, exc))
        return
    report.results[extension.name] = result
    _log_result(extension.name, result)


def _log_result(name, result):
    if result.restart_needed:
        LOG.warning('Publisher %(name)s: %(summary)s', {
            'name': name, 'summary': result.summary})
    elif result.changed:
        LOG.info('Publisher %(name)s: %(summary)s', {
            'name': name, 'summary': result.summary})
    else:
        LOG.debug('Publisher %(name)s: %(summary)s', {
            'name': name, 'summary': result.summary})


class Backoff:
    """Exponential backoff with jitter.

    The n-th consecutive failure waits ``initial * 2**(n-1)`` seconds,
    capped at ``maximum``, of which the second half is random ("equal
    jitter"): agents that failed together do not all retry together, and
    none retries at once.

    :param initial: seconds before the first retry.
    :param maximum: the cap.
    :param rand: ``() -> float in [0, 1)``; tests make it fixed.
    """

    def __init__(self, initial, maximum, rand=random.random):
        self.initial = initial
        self.maximum = maximum
        self.rand = rand
        self.failures = 0

    def next_delay(self):
        """Seconds to wait after one more failure."""
        ceiling = min(self.maximum, self.initial * 2 ** min(self.failures,
                                                            62))
        self.failures += 1
        return ceiling / 2 + ceiling / 2 * self.rand()

    def reset(self):
        self.failures = 0


class Daemon:
    """The ``run`` loop.

    :param load_conf: ``() -> ConfigOpts``, called at start and on SIGHUP;
        raises :class:`~.exception.ConfigError`.
    :param discover_fn: ``conf -> HostInventory``.
    :param publishers_fn: ``conf -> manager`` (:func:`load_publishers`).
    :param clock: monotonic seconds, for cycle durations.
    :param wall_clock: seconds since the epoch, for the last success.
    """

    def __init__(self, load_conf, discover_fn=discover,
                 publishers_fn=load_publishers, clock=time.monotonic,
                 wall_clock=time.time):
        self.load_conf = load_conf
        self.clock = clock
        self.wall_clock = wall_clock
        self.discover_fn = discover_fn
        self.publishers_fn = publishers_fn
        self.conf = None
        self.manager = None
        self.backoff = None
        self.cycles = 0
        self._stop = False
        self._reload = False
        self._wake = threading.Event()

    def install_signal_handlers(self):
        """SIGTERM/SIGINT stop, SIGHUP reloads (main thread only)."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def request_stop(self):
        self._stop = True
        self._wake.set()

    def request_reload(self):
        self._reload = True
        self._wake.set()

    def start(self):
        """Load the configuration and publishers; errors propagate."""
        self.conf = self.load_conf()
        self.manager = self.publishers_fn(self.conf)
        self.backoff = Backoff(self.conf.agent.backoff_initial,
                               self.conf.agent.backoff_max)
        # NOTE: kept across cycles (and reloads): rising AER counters and
        # flap damping need the earlier readings.
        self.health = health.HealthTracker(
            self.conf.agent.health_settle_cycles)
        self.metrics = metrics.AgentMetrics()
        if self.conf.agent.metrics_port:
            self.metrics.serve(self.conf.agent.metrics_port,
                               self.conf.agent.metrics_address)
            LOG.info('Metrics on http://%(address)s:%(port)d/metrics', {
                'address': self.conf.agent.metrics_address,
                'port': self.conf.agent.metrics_port})

    def reload(self):
        """Swap in the configuration files' current content, if valid."""
        self._reload = False
        try:
            conf = self.load_conf()
            manager = self.publishers_fn(conf)
        except exception.PublishError as exc:
            LOG.error('SIGHUP: keeping the running configuration: %s', exc)
            return
        self.conf, self.manager = conf, manager
        self.backoff = Backoff(conf.agent.backoff_initial,
                               conf.agent.backoff_max)
        LOG.info('SIGHUP: configuration reloaded; publishers: %s',
                 ', '.join(conf.agent.publishers))

    def run(self):
        """Cycle until asked to stop. :returns: the exit status, 0."""
        if self.conf is None:
            self.start()
        LOG.info('gpu-passthrough-agent running for host %(host)s every '
                 '%(interval)d s; publishers: %(publishers)s', {
                     'host': self.conf.agent.host,
                     'interval': self.conf.agent.interval,
                     'publishers': ', '.join(self.conf.agent.publishers)})
        while not self._stop:
            if self._reload:
                self.reload()
            report = self.cycle()
            self._sleep(self._delay_after(report))
        self.metrics.close()
        LOG.info('gpu-passthrough-agent stopped after %d cycle(s)',
                 self.cycles)
        return 0

    def cycle(self):
        """One cycle, counted and measured. :returns: its report."""
        started = self.clock()
        report = run_cycle(self.conf, self.manager, self._discover)
        self.cycles += 1
        nova_pci = self.conf.nova_pci
        self.metrics.observe_cycle(
            report, self.clock() - started, self.wall_clock(),
            nova_pci.include_shared_groups, nova_pci.report_in_placement)
        return report

    def _discover(self, conf):
        return self.health.assess(self.discover_fn(conf))

    def _delay_after(self, report):
        if report.ok:
            self.backoff.reset()
            return self.conf.agent.interval
        delay = self.backoff.next_delay()
        LOG.info('Retrying in %(delay).1f s (failure %(n)d in a row)',
                 {'delay': delay, 'n': self.backoff.failures})
        return delay

    def _sleep(self, seconds):
        # NOTE: a signal handler sets the event, so SIGTERM and SIGHUP cut
        # the wait short instead of waiting out the interval.
        if not self._stop:
            self._wake.wait(seconds)
        self._wake.clear()
