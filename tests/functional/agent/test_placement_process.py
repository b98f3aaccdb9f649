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
"""The agent as a real process against Placement as a real process.

One Placement server (gunicorn, SQLite) serves the whole module; each test
uses its own resource provider. The agent runs as ``python -m
gpu_passthrough_filter.cmd.agent`` exactly as an operator runs it.
"""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import fixtures
from oslotest import base

from gpu_passthrough_filter import traits
from tests.functional import placement_process
from tests.unit.agent import fixtures as agent_fixtures
from tests.unit.inventory import test_topologies as machines
from tests.unit.inventory import tree as sysfs_tree

FOREIGN = {'COMPUTE_NODE', 'HW_CPU_X86_AVX2', 'CUSTOM_RACK_7'}
DGX = {traits.IOMMU_ENABLED, traits.PASSTHROUGH_READY, traits.SHARED_SWITCH,
       traits.model_trait('10de', '20b0')}
RTX = {traits.IOMMU_ENABLED, traits.PASSTHROUGH_READY,
       traits.model_trait('10de', '2684')}
AGENT = [sys.executable, '-m', 'gpu_passthrough_filter.cmd.agent']
#: Seconds the daemon gets to converge after Placement comes back.
CONVERGE_TIMEOUT = 60


class AgentAgainstPlacementTest(base.BaseTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.placement = placement_process.PlacementProcess()
        cls.placement.setUp()
        cls.addClassCleanup(cls.placement.cleanUp)

    def setUp(self):
        super().setUp()
        self.directory = self.useFixture(fixtures.TempDir()).path
        self.sysfs = os.path.join(self.directory, 'host')

    def write_tree(self, machine):
        """Replace the host's sysfs tree by named machine ``machine``."""
        shutil.rmtree(self.sysfs, ignore_errors=True)
        machine(sysfs_tree.Tree(self.sysfs))

    def config(self, host, name='agent.conf', **agent):
        options = dict(host=host, sysfs_root=self.sysfs,
                       publishers='nova_pci,placement', interval=1,
                       backoff_initial=0.2, backoff_max=1.0)
        options.update(agent)
        return agent_fixtures.write_config(
            self.directory, name=name, agent=options,
            nova_pci={'output_file': os.path.join(self.directory,
                                                  name + '.nova')},
            placement={'auth_type': 'admin_token', 'token': 'admin',
                       'endpoint': self.placement.endpoint, 'timeout': 5})

    def publish_once(self, config):
        return subprocess.run(
            AGENT + ['publish', '--once', '--config-file', config],
            capture_output=True, text=True, timeout=120)

    def test_publish_change_outage_and_daemon_converge(self):
        uuid = self.placement.create_provider('e2e-host')
        self.placement.set_traits(uuid, FOREIGN)
        self.write_tree(machines.dgx_a100_like)
        config = self.config('e2e-host')

        first = self.publish_once(config)
        self.assertEqual(3, first.returncode, first.stderr)
        self.assertIn('restart nova-compute', first.stderr + first.stdout)
        self.assertEqual(FOREIGN | DGX, self.placement.traits(uuid)[0])

        # Steady state: exit 0, and Placement sees no write at all.
        mark = len(self.placement.access_lines())
        again = self.publish_once(config)
        self.assertEqual(0, again.returncode, again.stderr)
        seen = self.placement.requests_since(mark)
        self.assertNotEqual([], seen)
        self.assertEqual([], [r for r in seen if r[0] != 'GET'])

        # The hardware changes: the owned traits follow, foreign stay.
        self.write_tree(machines.pcie_8gpu_rtx4090)
        changed = self.publish_once(config)
        self.assertEqual(3, changed.returncode, changed.stderr)
        self.assertEqual(FOREIGN | RTX, self.placement.traits(uuid)[0])

        # The daemon runs; Placement dies, the tree changes, Placement
        # comes back: the daemon converges to exactly the new state.
        log_path = os.path.join(self.directory, 'daemon.log')
        with open(log_path, 'w') as log:
            daemon = subprocess.Popen(
                AGENT + ['run', '--config-file', config],
                stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(_kill, daemon)
        time.sleep(2)
        self.placement.stop()
        self.write_tree(machines.dgx_a100_like)
        time.sleep(3)
        self.placement.start()
        self._wait_for(lambda: self.placement.traits(uuid)[0]
                       == FOREIGN | DGX)
        daemon.send_signal(signal.SIGTERM)
        self.assertEqual(0, daemon.wait(30))
        with open(log_path) as log:
            output = log.read()
        self.assertIn('Placement is unavailable', output)
        self.assertIn('Retrying in', output)
        self.assertIn('stopped after', output)
        self.assertNotIn('Traceback', output)
        self.assertEqual(FOREIGN | DGX, self.placement.traits(uuid)[0])

    def test_two_agents_and_a_third_writer_lose_no_update(self):
        uuid = self.placement.create_provider('race-host')
        self.write_tree(machines.dgx_a100_like)
        configs = [self.config('race-host', name='agent%d.conf' % i,
                               publishers='placement') for i in (1, 2)]
        added = set()
        for round_ in range(2):
            # Start each round without the agents' traits, so both must
            # write, while a third client adds traits of its own.
            self.placement.set_traits(uuid, added)
            agents = [subprocess.Popen(
                AGENT + ['publish', '--once', '--config-file', config],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for config in configs]
            writer = threading.Thread(target=self._add_traits, args=(
                uuid, ['CUSTOM_RACE_%d_%d' % (round_, i) for i in range(15)],
                added))
            writer.start()
            outputs = [agent.communicate(timeout=120)[0] for agent in agents]
            writer.join(120)
            for agent, output in zip(agents, outputs):
                self.assertEqual(0, agent.returncode, output)
            self.assertEqual(30 if round_ else 15, len(added))
            self.assertEqual(DGX | added, self.placement.traits(uuid)[0])

    def test_missing_provider_and_bad_credentials_fail_once(self):
        self.write_tree(machines.dgx_a100_like)
        missing = self.publish_once(self.config('never-registered',
                                                publishers='placement'))
        self.assertEqual(1, missing.returncode)
        self.assertIn("no resource provider named 'never-registered'",
                      missing.stderr + missing.stdout)
        self.placement.create_provider('cred-host')
        config = self.config('cred-host', publishers='placement')
        with open(config, 'a') as stream:
            stream.write('[placement]\ntoken = demo\n')
        refused = self.publish_once(config)
        self.assertEqual(1, refused.returncode)
        self.assertIn('refused the agent\'s credentials (HTTP 403',
                      refused.stderr + refused.stdout)

    def test_cordon_commands_hold_and_release_a_gpu(self):
        """``cordon`` and ``uncordon`` as processes, PCI in Placement.

        The GPU's provider (named as nova-compute names it) gets
        ``reserved = total`` at once and 0 again; the cordon is listed
        from its file by a third process.
        """
        root = self.placement.create_provider('cordon-host')
        self.write_tree(machines.pcie_8gpu_rtx4090)
        config = self.config('cordon-host', state_dir=os.path.join(
            self.directory, 'state'))
        with open(config, 'a') as stream:
            stream.write('[nova_pci]\nreport_in_placement = True\n')
        gpu = '0000:11:00.0'
        rc_name = 'CUSTOM_GPU_10DE_2684'
        self.placement.call('PUT', '/resource_classes/%s' % rc_name)
        child = self.placement.call('POST', '/resource_providers', {
            'name': 'cordon-host_%s' % gpu.upper(),
            'parent_provider_uuid': root}).json()
        self.placement.call(
            'PUT', '/resource_providers/%s/inventories' % child['uuid'], {
                'resource_provider_generation': child['generation'],
                'inventories': {rc_name: {'total': 1}}}).raise_for_status()

        def reserved():
            body = self.placement.call(
                'GET', '/resource_providers/%s/inventories'
                % child['uuid']).json()
            return body['inventories'][rc_name]['reserved']

        run = functools.partial(subprocess.run, capture_output=True,
                                text=True, timeout=120)
        held = run(AGENT + ['cordon', gpu, '--reason', 'fan', '--ttl', '1d',
                            '--config-file', config])
        # 3: the nova file was written for the first time.
        self.assertEqual(3, held.returncode, held.stderr)
        self.assertEqual(1, reserved())
        listed = run(AGENT + ['cordons', '--format', 'json',
                              '--config-file', config])
        self.assertEqual(0, listed.returncode, listed.stderr)
        self.assertEqual([gpu], [row['target'] for row in
                                 json.loads(listed.stdout)])
        released = run(AGENT + ['uncordon', gpu, '--config-file', config])
        # 0: with PCI in Placement the nova file did not change.
        self.assertEqual(0, released.returncode, released.stderr)
        self.assertEqual(0, reserved())

    def _add_traits(self, uuid, names, added):
        for name in names:
            self.placement.add_trait(uuid, name)
            added.add(name)

    @staticmethod
    def _wait_for(predicate):
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except Exception:  # Placement still starting
                pass
            time.sleep(0.5)
        raise AssertionError('the agent did not converge in %d s'
                             % CONVERGE_TIMEOUT)


def _kill(process):
    if process.poll() is None:
        process.kill()
        process.wait(30)
