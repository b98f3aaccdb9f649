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
"""The cordon file, its commands, and how a cordon holds a GPU back."""

import io
import json
import os
from unittest import mock

import fixtures
import hypothesis
from hypothesis import strategies as st
from oslotest import base

from gpu_passthrough_filter.agent import cordon
from gpu_passthrough_filter.agent import daemon
from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.agent import nova_pci
from gpu_passthrough_filter.agent import selection
from gpu_passthrough_filter.cmd import agent as agent_cmd
from tests.unit.agent import fixtures as agent_fixtures

M = agent_fixtures.MACHINES
A0, A1 = '0000:07:00.0', '0000:0f:00.0'


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


class TargetAndDurationTest(base.BaseTestCase):

    def test_addresses_in_every_spelling(self):
        for text, want in [('0000:81:00.0', '0000:81:00.0'),
                           ('81:00.0', '0000:81:00.0'),
                           ('0000:AF:00.1', '0000:af:00.1'),
                           (' 10000:01:00.0 ', '10000:01:00.0'),
                           ('HOST', cordon.HOST)]:
            self.assertEqual(want, cordon.normalise_target(text))

    def test_not_an_address(self):
        for text in ('81:00', 'gpu0', '0000:81:00.8', ''):
            self.assertRaises(cordon.CordonError, cordon.normalise_target,
                              text)

    def test_durations(self):
        self.assertEqual(90, cordon.parse_duration('90'))
        self.assertEqual(90, cordon.parse_duration('90s'))
        self.assertEqual(1800, cordon.parse_duration('30m'))
        self.assertEqual(7200, cordon.parse_duration('2h'))
        self.assertEqual(86400 * 1.5, cordon.parse_duration('1.5d'))
        self.assertEqual(604800, cordon.parse_duration('1w'))
        for text in ('0', '-5m', '2 hours', 'soon', ''):
            self.assertRaises(cordon.CordonError, cordon.parse_duration,
                              text)

    @hypothesis.given(st.text(max_size=20))
    def test_any_text_is_a_duration_or_a_clear_error(self, text):
        try:
            self.assertGreater(cordon.parse_duration(text), 0)
        except cordon.CordonError as exc:
            self.assertIn('duration', str(exc))


class CordonBookTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.state_dir = os.path.join(
            self.useFixture(fixtures.TempDir()).path, 'state')
        self.clock = Clock()
        self.book = cordon.CordonBook(self.state_dir, self.clock)

    def test_no_file_no_cordon(self):
        self.assertEqual({}, self.book.active())

    def test_cordon_survives_a_new_book(self):
        self.book.cordon(['81:00.0'], 'RMA  4711\n')
        again = cordon.CordonBook(self.state_dir, self.clock).active()
        self.assertEqual(['0000:81:00.0'], list(again))
        self.assertEqual('RMA 4711', again['0000:81:00.0'].reason)
        self.assertIsNone(again['0000:81:00.0'].until)

    def test_ttl_expires_and_is_dropped_at_the_next_write(self):
        self.book.cordon([A0], 'firmware', ttl=60)
        self.book.cordon([A1], 'cabling')
        self.clock.now += 59
        self.assertEqual({A0, A1}, set(self.book.active()))
        self.clock.now += 2
        self.assertEqual({A1}, set(self.book.active()))
        self.assertEqual({A0, A1}, set(self.book.load()))
        self.book.cordon(['host'], 'rack maintenance')
        self.assertEqual({A1, cordon.HOST}, set(self.book.load()))

    def test_uncordon_says_what_it_removed(self):
        self.book.cordon([A0, A1], 'x')
        self.assertEqual([A0], self.book.uncordon(['07:00.0', '99:00.0']))
        self.assertEqual({A1}, set(self.book.active()))

    def test_a_reason_is_required(self):
        self.assertRaises(cordon.CordonError, self.book.cordon, [A0], '  ')
        self.assertFalse(os.path.exists(self.book.path))

    def test_unreadable_file_is_an_error_not_no_cordon(self):
        os.makedirs(self.state_dir)
        for text in ('{"cordons": ', '[]', '{"cordons": []}', '{}'):
            with open(self.book.path, 'w') as stream:
                stream.write(text)
            error = self.assertRaises(cordon.CordonError, self.book.active)
            self.assertIn('not a cordon file', str(error))

    def test_a_bad_entry_is_named_and_the_others_stand(self):
        os.makedirs(self.state_dir)
        with open(self.book.path, 'w') as stream:
            json.dump({'version': 1, 'cordons': {
                A0: {'reason': 'ok', 'since': 1.0, 'until': None},
                'gpu7': {'reason': 'bad address', 'since': 1.0},
                A1: {'since': 1.0}}}, stream)
        self.assertEqual({A0}, set(self.book.active()))
        self.assertEqual(2, len(self.book.errors))
        self.assertIn("'gpu7'", ' '.join(self.book.errors))


class HeldGpuTest(base.BaseTestCase):
    """A cordoned GPU: held in Placement mode, left out in legacy mode."""

    def setUp(self):
        super().setUp()
        self.inventory = agent_fixtures.machine_inventory(
            self, M.pcie_4gpu_dual_socket_l40s)
        self.first = self.inventory.gpus[0].address

    def choices(self, cordons, in_placement):
        cordon.apply(self.inventory, cordons)
        return {choice.gpu.address: choice for choice in selection.choose(
            self.inventory, hold_in_placement=in_placement)}

    def test_one_gpu(self):
        cordons = {self.first: cordon.Cordon(self.first, 'RMA', 0.0)}
        held = self.choices(cordons, in_placement=True)
        self.assertTrue(held[self.first].offered)
        self.assertEqual('cordoned: RMA', held[self.first].held)
        self.assertEqual(1, sum(1 for c in held.values() if c.held))
        legacy = self.choices(cordons, in_placement=False)
        self.assertFalse(legacy[self.first].offered)
        self.assertEqual('cordoned: RMA', legacy[self.first].reason)
        self.assertEqual(3, sum(1 for c in legacy.values() if c.offered))

    def test_host_wide_and_a_gpu_of_its_own(self):
        cordons = {cordon.HOST: cordon.Cordon(cordon.HOST, 'rack', 0.0),
                   self.first: cordon.Cordon(self.first, 'RMA', 0.0,
                                             until=3600.0)}
        choices = self.choices(cordons, in_placement=True)
        self.assertIn('cordoned until 1970-01-01 01:00:00Z: RMA',
                      choices[self.first].held)
        self.assertTrue(all(c.held == 'cordoned: rack'
                            for address, c in choices.items()
                            if address != self.first))

    def test_unhealthy_and_cordoned_say_both(self):
        gpu = self.inventory.gpus[0]
        gpu.health, gpu.health_reasons = 'unhealthy', ['IOMMU off']
        cordons = {self.first: cordon.Cordon(self.first, 'RMA', 0.0)}
        choices = self.choices(cordons, in_placement=True)
        self.assertEqual('cordoned: RMA; unhealthy: IOMMU off',
                         choices[self.first].held)

    def test_nova_file_keeps_a_held_gpu_in_placement_mode(self):
        cordon.apply(self.inventory, {
            self.first: cordon.Cordon(self.first, 'RMA', 0.0)})
        text = nova_pci.render(self.inventory, report_in_placement=True)
        self.assertEqual(4, text.count('\ndevice_spec = '))
        self.assertIn('offered, held in Placement (cordoned: RMA)', text)
        legacy = nova_pci.render(self.inventory)
        self.assertEqual(3, legacy.count('\ndevice_spec = '))
        self.assertIn('left out: cordoned: RMA', legacy)


class CordonCommandTest(base.BaseTestCase):
    """The commands, through ``gpu-passthrough-agent``'s own parser."""

    def setUp(self):
        super().setUp()
        root = agent_fixtures.machine_tree(self, M.pcie_4gpu_dual_socket_l40s)
        self.conf = agent_fixtures.agent_conf(
            self, publishers=('nova_pci',), sysfs_root=root)
        self.config_file = self.conf.config_file[0]

    def agent(self, *argv):
        out = self.useFixture(fixtures.MonkeyPatch('sys.stdout',
                                                   io.StringIO())).new_value
        err = self.useFixture(fixtures.MonkeyPatch('sys.stderr',
                                                   io.StringIO())).new_value
        status = agent_cmd.main(list(argv) + ['--config-file',
                                              self.config_file])
        return status, out.getvalue(), err.getvalue()

    def nova_file(self):
        with open(self.conf.nova_pci.output_file) as stream:
            return stream.read()

    def test_cordon_publishes_at_once_and_survives(self):
        gpu = daemon.discover(self.conf).gpus[1].address
        status, out, _ = self.agent('cordon', gpu, '--reason', 'fan noise',
                                    '--ttl', '2h')
        # Legacy mode: the file changed, nova-compute must restart.
        self.assertEqual(3, status)
        self.assertIn('%s cordoned until' % gpu, out)
        self.assertIn('%s ' % gpu, self.nova_file())
        self.assertNotIn('"address": "%s"' % gpu, self.nova_file())
        status, out, _ = self.agent('cordons', '--format', 'json')
        rows = json.loads(out)
        self.assertEqual([gpu], [row['target'] for row in rows])
        self.assertEqual('fan noise', rows[0]['reason'])
        self.assertEqual(3, self.agent('uncordon', gpu)[0])
        self.assertIn('"address": "%s"' % gpu, self.nova_file())
        self.assertIn('No cordon in force', self.agent('cordons')[1])

    def test_in_placement_mode_a_cordon_needs_no_restart(self):
        """Only the file's comments change: exit 0, not 3."""
        conf = agent_fixtures.agent_conf(
            self, publishers=('nova_pci',),
            sysfs_root=self.conf.agent.sysfs_root,
            nova_pci={'report_in_placement': True})
        self.config_file = conf.config_file[0]
        self.conf = conf
        gpu = daemon.discover(conf).gpus[0].address
        first = self.agent('uncordon', gpu)
        self.assertEqual(3, first[0], first)  # the file is new
        held = self.agent('cordon', gpu, '--reason', 'fan')
        self.assertEqual(0, held[0], held)
        self.assertIn('offered, held in Placement (cordoned: fan)',
                      self.nova_file())
        self.assertIn('"address": "%s"' % gpu, self.nova_file())
        self.assertEqual(0, self.agent('uncordon', gpu)[0])

    def test_no_publish_only_records(self):
        status, _, _ = self.agent('cordon', '--host', '--reason', 'rack',
                                  '--no-publish')
        self.assertEqual(0, status)
        self.assertFalse(os.path.exists(self.conf.nova_pci.output_file))
        self.assertEqual(
            4, sum(1 for gpu in daemon.discover(self.conf).gpus
                   if gpu.cordon == 'cordoned: rack'))

    def test_malformed_requests(self):
        for argv in (('cordon', '--reason', 'x'),
                     ('cordon', 'gpu0', '--reason', 'x'),
                     ('cordon', '07:00.0', '--reason', 'x', '--ttl', 'soon'),
                     ('uncordon',)):
            status, _, err = self.agent(*argv)
            self.assertEqual(2, status, argv)
            self.assertTrue(err.startswith('error: '), err)

    def test_a_broken_cordon_file_publishes_nothing(self):
        os.makedirs(self.conf.agent.state_dir)
        with open(os.path.join(self.conf.agent.state_dir,
                               cordon.FILE_NAME), 'w') as stream:
            stream.write('{"cordons": [')
        error = self.assertRaises(exception.CordonFileError,
                                  daemon.discover, self.conf)
        self.assertIn('not a cordon file', str(error))
        with mock.patch.object(daemon.LOG, 'error') as log:
            report = daemon.run_cycle(self.conf,
                                      daemon.load_publishers(self.conf))
        self.assertFalse(report.ok)
        log.assert_called_once()
        self.assertFalse(os.path.exists(self.conf.nova_pci.output_file))
