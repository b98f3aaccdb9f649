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
"""``placement-conf enable`` and ``nova-conf enable``'s order and hints,
read back with the services' own option loaders."""

import io
import os

import fixtures
import nova.conf
from oslo_config import cfg
from oslotest import base
from placement import conf as placement_conf

from gpu_passthrough_filter.cmd import agent
from gpu_passthrough_filter import recommended


class ConfigCommandTest(base.BaseTestCase):

    def setUp(self):
        super(ConfigCommandTest, self).setUp()
        self.directory = self.useFixture(fixtures.TempDir()).path

    def write(self, name, text):
        path = os.path.join(self.directory, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def run_agent(self, *argv):
        args = agent.build_parser().parse_args(list(argv))
        out, err = io.StringIO(), io.StringIO()
        return args.func(args, out=out, err=err), out.getvalue(), \
            err.getvalue()

    def placement_loads(self, path):
        conf = cfg.ConfigOpts()
        placement_conf.register_opts(conf)
        conf([], project='placement', default_config_files=[path])
        return conf

    def test_placement_conf_enable_sets_the_recommended_options(self):
        """Placement reads every recommended value; a rerun changes nothing.

        The operator's other options and comments stay.
        """
        path = self.write('placement.conf', '# site\n[placement]\n'
                          'max_allocation_candidates = 50000\n'
                          '[placement_database]\nconnection = sqlite://\n')
        rc, out, _ = self.run_agent('placement-conf', 'enable',
                                    '--config-file', path)
        self.assertEqual(0, rc)
        self.assertIn('max_allocation_candidates: was 50000, now 1000', out)
        conf = self.placement_loads(path)
        for option in recommended.PLACEMENT_OPTIONS:
            self.assertEqual(option.value,
                             getattr(getattr(conf, option.group),
                                     option.name), option.name)
        self.assertEqual('sqlite://', conf.placement_database.connection)
        with open(path) as f:
            self.assertTrue(f.read().startswith('# site\n'))

        rc, out, _ = self.run_agent('placement-conf', 'enable',
                                    '--config-file', path)
        self.assertEqual((0, '%s: unchanged\n' % path), (rc, out))

    def test_placement_conf_dry_run_writes_nothing(self):
        path = self.write('placement.conf', '')
        rc, out, _ = self.run_agent('placement-conf', 'enable',
                                    '--config-file', path, '--dry-run')
        self.assertEqual(0, rc)
        self.assertIn('+optimize_for_wide_provider_trees = True', out)
        with open(path) as f:
            self.assertEqual('', f.read())

    def test_nova_conf_enable_orders_warns_and_hints(self):
        """Ours before PciPassthroughFilter; missing NUMA filter warned.

        With pci_in_placement on, the Placement hint is printed.
        """
        path = self.write('nova.conf', '[filter_scheduler]\n'
                          'pci_in_placement = True\n'
                          'enabled_filters = ComputeFilter,'
                          'PciPassthroughFilter\n')
        rc, _, err = self.run_agent('nova-conf', 'enable',
                                    '--config-file', path)
        self.assertEqual(0, rc)
        with open(path) as f:
            text = f.read()
        self.assertIn('enabled_filters = ComputeFilter,GPUPassthroughFilter,'
                      'PciPassthroughFilter\n', text)
        self.assertIn('does not list NUMATopologyFilter', err)
        self.assertNotIn('does not list PciPassthroughFilter', err)
        self.assertIn('placement-conf enable', err)

    def test_nova_conf_enable_can_add_nova_gpu_filters(self):
        """--add-nova-gpu-filters: nova's two added, ours before them.

        devstack's list has neither; disable then removes only ours.
        """
        path = self.write('nova.conf', '[filter_scheduler]\n'
                          'enabled_filters = ComputeFilter\n')
        rc, out, err = self.run_agent('nova-conf', 'enable',
                                      '--add-nova-gpu-filters',
                                      '--config-file', path)
        self.assertEqual((0, ''), (rc, err))
        with open(path) as f:
            self.assertIn('enabled_filters = ComputeFilter,'
                          'GPUPassthroughFilter,PciPassthroughFilter,'
                          'NUMATopologyFilter\n', f.read())
        self.run_agent('nova-conf', 'disable', '--config-file', path)
        with open(path) as f:
            self.assertIn('enabled_filters = ComputeFilter,'
                          'PciPassthroughFilter,NUMATopologyFilter\n',
                          f.read())

    def test_nova_conf_enable_can_name_the_fast_nova_filters(self):
        """--fast-nova-filters: nova's two by their fast forms, in place.

        Ours goes before the fast PCI filter; a second run changes
        nothing; no warning about missing nova filters; disable names them
        back as nova's (the fast forms load only with ours available).
        """
        path = self.write('nova.conf', '[filter_scheduler]\n'
                          'enabled_filters = ComputeFilter,'
                          'PciPassthroughFilter,NUMATopologyFilter\n')
        rc, out, err = self.run_agent('nova-conf', 'enable',
                                      '--fast-nova-filters',
                                      '--config-file', path)
        self.assertEqual((0, ''), (rc, err))
        self.assertIn('PciPassthroughFilter is now FastPciPassthroughFilter',
                      out)
        with open(path) as f:
            self.assertIn('enabled_filters = ComputeFilter,'
                          'GPUPassthroughFilter,FastPciPassthroughFilter,'
                          'FastNUMATopologyFilter\n', f.read())
        rc, out, err = self.run_agent('nova-conf', 'enable',
                                      '--fast-nova-filters',
                                      '--add-nova-gpu-filters',
                                      '--config-file', path)
        self.assertEqual((0, ''), (rc, err))
        self.assertIn('unchanged', out)
        self.run_agent('nova-conf', 'disable', '--config-file', path)
        with open(path) as f:
            self.assertIn('enabled_filters = ComputeFilter,'
                          'PciPassthroughFilter,NUMATopologyFilter\n',
                          f.read())

    def test_nova_conf_enable_packing_weights(self):
        """--packing-weights: nova reads the recommended weigher values.

        An operator's value is replaced (and said so), a rerun changes
        nothing, disable leaves them.
        """
        path = self.write('nova.conf', '[filter_scheduler]\n'
                          'ram_weight_multiplier = 2.0\n')
        rc, out, err = self.run_agent('nova-conf', 'enable',
                                      '--packing-weights',
                                      '--add-nova-gpu-filters',
                                      '--config-file', path)
        self.assertEqual((0, ''), (rc, err))
        self.assertIn('ram_weight_multiplier: was 2.0, now -1.0', out)
        conf = cfg.ConfigOpts()
        nova.conf.scheduler.register_opts(conf)
        conf([], default_config_files=[path])
        self.assertEqual(
            {(option.group, option.name): option.value
             for option in recommended.SCHEDULER_WEIGHT_OPTIONS},
            {(option.group, option.name): getattr(
                conf[option.group], option.name)
             for option in recommended.SCHEDULER_WEIGHT_OPTIONS})
        rc, out, _ = self.run_agent('nova-conf', 'enable',
                                    '--packing-weights',
                                    '--add-nova-gpu-filters',
                                    '--config-file', path)
        self.assertIn('unchanged', out)
        self.run_agent('nova-conf', 'disable', '--config-file', path)
        with open(path) as f:
            self.assertIn('ram_weight_multiplier = -1.0', f.read())

    def test_nova_conf_enable_moves_ours_before_nova_pci_filter(self):
        path = self.write('nova.conf', '[filter_scheduler]\n'
                          'enabled_filters = PciPassthroughFilter,'
                          'NUMATopologyFilter,GPUPassthroughFilter\n')
        rc, out, err = self.run_agent('nova-conf', 'enable',
                                      '--config-file', path)
        self.assertEqual((0, ''), (rc, err))
        self.assertIn('moved GPUPassthroughFilter before '
                      'PciPassthroughFilter', out)
        with open(path) as f:
            self.assertIn('enabled_filters = GPUPassthroughFilter,'
                          'PciPassthroughFilter,NUMATopologyFilter\n',
                          f.read())


class LazySubcommandTest(base.BaseTestCase):

    def test_discover_imports_no_publishing_stack(self):
        """``discover`` loads neither oslo.log nor keystoneauth (process).

        Before, every sub-command imported them all: 0.23 s of the
        command's 0.10 s now on the bundled tree.
        """
        import subprocess
        import sys
        code = ('import sys; from gpu_passthrough_filter.cmd import agent; '
                'agent.build_parser(["discover", "--format", "json"]); '
                'print(sorted(m for m in ("oslo_log", "keystoneauth1", '
                '"openstack") if m in sys.modules))')
        out = subprocess.run([sys.executable, '-c', code], check=True,
                             capture_output=True, text=True).stdout
        self.assertEqual('[]', out.strip())


class AliasCommandTest(base.BaseTestCase):
    """``nova-conf alias``: the controller's aliases are the computes'."""

    def test_same_entries_as_the_agents_generated_file(self):
        """For the models the agent offers, the same names and classes.

        Compared as nova reads them (JSON values of ``[pci] alias``), with
        and without PCI in Placement and with a custom name.
        """
        import json

        from gpu_passthrough_filter.agent import nova_pci
        from tests.unit.agent import fixtures as agent_fixtures

        inventory = agent_fixtures.machine_inventory(
            self, agent_fixtures.MACHINES.dgx_a100_like)
        models = sorted({'%s:%s' % (g.vendor, g.device)
                         for g in inventory.gpus})
        for placement in (False, True):
            for names in ({}, {tuple(models[0].split(':')): 'a100'}):
                text = nova_pci.render(inventory,
                                       report_in_placement=placement,
                                       alias_names=names)
                computes = sorted(
                    json.loads(line.split(' = ', 1)[1])
                    for line in text.splitlines()
                    if line.startswith('alias = '))
                argv = ['nova-conf', 'alias'] + models
                if placement:
                    argv.append('--placement')
                for (vendor, device), name in names.items():
                    argv += ['--name', '%s:%s=%s' % (vendor, device, name)]
                args = agent.build_parser(argv).parse_args(argv)
                out = io.StringIO()
                self.assertEqual(0, args.func(args, out=out))
                controller = sorted(json.loads(line)
                                    for line in out.getvalue().split())
                self.assertEqual(computes, controller)
