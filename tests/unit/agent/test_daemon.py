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
"""The publishing cycle, the daemon loop, plugin loading and the CLI."""

import functools
import io
import os
import signal

import fixtures
from oslotest import base
from stevedore import extension

from gpu_passthrough_filter.agent import base as agent_base
from gpu_passthrough_filter.agent import daemon
from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.agent import json_publisher
from gpu_passthrough_filter.agent import nova_pci
from gpu_passthrough_filter.agent import placement
from gpu_passthrough_filter.cmd import agent as agent_cmd
from gpu_passthrough_filter.cmd import common
from gpu_passthrough_filter.inventory import model
from tests.unit.agent import fixtures as agent_fixtures

M = agent_fixtures.MACHINES


class ScriptedPublisher(agent_base.Publisher):
    """Raises the scripted errors in turn, then succeeds."""

    def __init__(self, conf, errors=()):
        super().__init__(conf)
        self.errors = list(errors)
        self.seen = []

    def publish(self, inventory):
        self.seen.append(inventory)
        if self.errors:
            raise self.errors.pop(0)
        return agent_base.PublishResult(changed=False, summary='same')


def manager_of(**publishers):
    return extension.ExtensionManager.make_test_instance(
        [extension.Extension(name, None, type(obj), obj)
         for name, obj in publishers.items()])


def unavailable():
    return exception.PlacementUnavailable(method='GET', url='/', reason='x')


class BackoffTest(base.BaseTestCase):

    def test_doubles_to_the_cap_with_jitter_in_upper_half(self):
        low = daemon.Backoff(2.0, 20.0, rand=lambda: 0.0)
        self.assertEqual([1.0, 2.0, 4.0, 8.0, 10.0, 10.0],
                         [low.next_delay() for _ in range(6)])
        high = daemon.Backoff(2.0, 20.0, rand=lambda: 0.999999)
        delays = [high.next_delay() for _ in range(6)]
        self.assertEqual([2.0, 4.0, 8.0, 16.0, 20.0, 20.0],
                         [round(delay, 3) for delay in delays])
        high.reset()
        self.assertAlmostEqual(2.0, high.next_delay(), places=3)

    def test_many_failures_do_not_overflow(self):
        backoff = daemon.Backoff(1.0, 300.0, rand=lambda: 0.5)
        for _ in range(2000):
            delay = backoff.next_delay()
        self.assertEqual(225.0, delay)


class CycleTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.conf = agent_fixtures.agent_conf(self)
        self.inventory = model.HostInventory(hostname='gpu-host')

    def test_discovery_failure_publishes_nothing(self):
        scripted = ScriptedPublisher(self.conf)

        def broken(conf):
            raise exception.DiscoveryError(root='/x', reason='gone')
        report = daemon.run_cycle(self.conf, manager_of(a=scripted), broken)
        self.assertFalse(report.ok)
        self.assertEqual(['discovery'], list(report.errors))
        self.assertEqual([], scripted.seen)

    def test_one_failing_publisher_does_not_stop_the_others(self):
        failing = ScriptedPublisher(self.conf, [unavailable()])
        working = ScriptedPublisher(self.conf)
        report = daemon.run_cycle(
            self.conf, manager_of(a=failing, b=working),
            lambda conf: self.inventory)
        self.assertEqual(['a'], list(report.errors))
        self.assertEqual(['b'], list(report.results))
        self.assertEqual([self.inventory], working.seen)

    def test_unexpected_publisher_error_is_reported_not_raised(self):
        """A bug (any exception) in one publisher: the cycle goes on."""
        buggy = ScriptedPublisher(self.conf, [KeyError('resource_providers')])
        working = ScriptedPublisher(self.conf)
        report = daemon.run_cycle(
            self.conf, manager_of(a=buggy, b=working),
            lambda conf: self.inventory)
        self.assertIn("unexpected KeyError: 'resource_providers'",
                      str(report.errors['a']))
        self.assertEqual(['b'], list(report.results))


class LoadingTest(base.BaseTestCase):

    def test_entry_points_in_configured_order(self):
        conf = agent_fixtures.agent_conf(
            self, publishers=['json', 'placement', 'nova_pci'])
        manager = daemon.load_publishers(conf)
        self.assertEqual(['json', 'placement', 'nova_pci'], manager.names())
        self.assertEqual(
            [json_publisher.JsonPublisher, placement.PlacementPublisher,
             nova_pci.NovaPciPublisher],
            [type(ext.obj) for ext in manager])
        self.assertIs(conf, manager['json'].obj.conf)

    def test_unknown_publisher_is_a_config_error(self):
        conf = agent_fixtures.agent_conf(self,
                                         publishers=['nova_pci', 'mqtt'])
        exc = self.assertRaises(exception.ConfigError,
                                daemon.load_publishers, conf)
        self.assertIn("unknown publisher 'mqtt'", str(exc))

    def test_malformed_values_fail_at_load(self):
        for options in ({'agent': {'interval': 'soon'}},
                        {'nova_pci': {'include_shared_groups': 'maybe'}}):
            path = agent_fixtures.write_config(
                self.useFixture(fixtures.TempDir()).path, **options)
            self.assertRaises(exception.ConfigError, daemon.build_conf,
                              [path])
        self.assertRaises(exception.ConfigError, daemon.build_conf,
                          ['/nonexistent/agent.conf'])


class DaemonTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.addCleanup(signal.signal, signum, signal.getsignal(signum))
        self.directory = self.useFixture(fixtures.TempDir()).path
        self.path = agent_fixtures.write_config(
            self.directory, agent={'publishers': 'json', 'interval': 300,
                                   'backoff_initial': 0.01,
                                   'backoff_max': 0.02})
        self.inventory = model.HostInventory(hostname='gpu-host')

    def make(self, scripted):
        return daemon.Daemon(
            functools.partial(daemon.build_conf, [self.path]),
            discover_fn=lambda conf: self.inventory,
            publishers_fn=lambda conf: manager_of(json=scripted))

    def scripted_waits(self, agent, *actions):
        """Replace the daemon's wait: record each delay, run one action.

        No timer and no signal: the test decides what happens in each
        wait, however slow the machine (a loaded CI).
        """
        delays, pending = [], list(actions)

        def wait(seconds):
            delays.append(seconds)
            (pending.pop(0) if pending else agent.request_stop)()
        agent._sleep = wait
        return delays

    def test_retries_failures_with_backoff_then_waits_interval(self):
        scripted = ScriptedPublisher(None, [unavailable(), unavailable()])
        agent = self.make(scripted)
        delays = self.scripted_waits(agent, lambda: None, lambda: None)
        self.assertEqual(0, agent.run())
        # Two failures retried within backoff_max, then one success and
        # the 300 s interval, during which the stop comes.
        self.assertEqual(3, agent.cycles)
        self.assertEqual(3, len(scripted.seen))
        self.assertTrue(all(0 < d <= 0.02 for d in delays[:2]), delays)
        self.assertEqual(300, delays[2])

    def test_sigterm_stops_after_the_cycle_without_the_interval(self):
        """A real SIGTERM, sent from inside the cycle (no timer).

        The handler sets the daemon's event, so the 300 s wait after the
        cycle returns at once (the test would otherwise time out).
        """
        class Killing(ScriptedPublisher):
            def publish(self, inventory):
                os.kill(os.getpid(), signal.SIGTERM)
                return super().publish(inventory)
        agent = self.make(Killing(None))
        agent.install_signal_handlers()
        self.assertEqual(0, agent.run())
        self.assertEqual(1, agent.cycles)

    def test_sighup_reloads_and_keeps_running_config_when_invalid(self):
        agent = self.make(ScriptedPublisher(None))
        agent.install_signal_handlers()
        agent.start()
        self.assertEqual(300, agent.conf.agent.interval)
        agent_fixtures.write_config(
            self.directory, agent={'publishers': 'json', 'interval': 200})
        # SIGHUP's handler (installed above) asks for a reload.
        signal.getsignal(signal.SIGHUP)(signal.SIGHUP, None)
        self.scripted_waits(agent)
        agent.run()
        self.assertEqual(200, agent.conf.agent.interval)
        self.assertEqual(1, agent.cycles)

        agent_fixtures.write_config(self.directory,
                                    agent={'interval': 'soon'})
        agent.request_reload()
        agent.reload()
        self.assertEqual(200, agent.conf.agent.interval)


class PublishOnceTest(base.BaseTestCase):
    """``gpu-passthrough-agent publish --once`` exit statuses, in process."""

    def setUp(self):
        super().setUp()
        self.placement = self.useFixture(
            agent_fixtures.InProcessPlacement())
        self.sysfs = agent_fixtures.machine_tree(self, M.dgx_a100_like)
        self.directory = self.useFixture(fixtures.TempDir()).path
        # NOTE: the command sets up oslo.log, which logs to the standard
        # streams it finds at setup; capture them.
        self.output = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', self.output))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', self.output))

    def main(self, **options):
        agent = {'host': 'gpu-host', 'sysfs_root': self.sysfs,
                 'publishers': 'nova_pci,placement'}
        agent.update(options.pop('agent', {}))
        path = agent_fixtures.write_config(
            self.directory, agent=agent,
            nova_pci={'output_file': os.path.join(self.directory,
                                                  'gpu.conf')},
            placement={'auth_type': 'admin_token', 'token': 'admin',
                       'endpoint': self.placement.endpoint}, **options)
        return agent_cmd.main(['publish', '--once', '--config-file', path])

    def test_exit_statuses(self):
        # No provider yet: failure, with the reason.
        self.assertEqual(common.EXIT_FAILED, self.main())
        self.assertIn("no resource provider named 'gpu-host'",
                      self.output.getvalue())
        # The file was written anyway (restart needed) but the run failed.
        self.placement.create_provider('gpu-host')
        self.assertEqual(common.EXIT_OK, self.main())
        # Changing the file asks for a nova-compute restart.
        os.remove(os.path.join(self.directory, 'gpu.conf'))
        self.assertEqual(common.EXIT_RESTART_NOVA, self.main())
        self.assertEqual(common.EXIT_OK, self.main())

    def test_bad_config(self):
        self.assertEqual(common.EXIT_FAILED,
                         self.main(agent={'publishers': 'nova_pci,bogus'}))
        self.assertIn("unknown publisher 'bogus'", self.output.getvalue())
