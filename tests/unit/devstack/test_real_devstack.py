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
"""The devstack plugin run by devstack's real functions, then read by nova.

devstack's own ``functions``, ``stackrc``, ``lib/nova`` and ``lib/placement``
(vendored under ``tests/data/devstack``) are sourced; the plugin is
registered with devstack's ``enable_plugin``, its settings loaded with
``load_plugin_settings`` and its phases run with ``run_phase``, with
devstack's real ``iniset``, ``iniset_multiline`` and, between post-config
and extra as in stack.sh, devstack's real ``start_nova_compute`` (which
copies nova.conf over nova-cpu.conf). Stubbed: what starts a service
(``run_process``, ``stop_process``), ``sudo`` (every path is under a
temporary directory: the machine is untouched), ``setup_develop`` (the
project is installed already), and two functions of devstack files not
vendored (``iniset_rpc_backend``, ``configure_keystoneauth``). The agent
runs for real on a fake sysfs tree (``GPU_PASSTHROUGH_FAKE_GPUS``).

Then nova's and Placement's own option loaders read the result as each
service would: nova-api and nova-scheduler ``nova.conf``; nova-compute
``nova-cpu.conf`` plus ``nova-compute.conf.d`` (oslo.config's default
config dir for the program ``nova-compute``); Placement ``placement.conf``.
"""

import json
import os
import subprocess
import sys
import textwrap

import fixtures
from oslotest import base

from gpu_passthrough_filter import recommended

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__),
                                    '..', '..', '..'))
DEVSTACK = os.path.join(REPO, 'tests', 'data', 'devstack')

SCRIPT = textwrap.dedent(r'''
    set -o errexit
    TOP_DIR=$DEVSTACK
    source $TOP_DIR/stackrc > /dev/null
    ENABLED_SERVICES=key,n-api,n-cond,n-sch,n-cpu,placement-api,placement-client
    source $TOP_DIR/lib/placement
    source $TOP_DIR/lib/nova
    # Everything under the test's directory.
    NOVA_CONF_DIR=$ROOT/etc/nova
    NOVA_CONF=$NOVA_CONF_DIR/nova.conf
    NOVA_CPU_CONF=$NOVA_CONF_DIR/nova-cpu.conf
    PLACEMENT_CONF_DIR=$ROOT/etc/placement
    PLACEMENT_CONF=$PLACEMENT_CONF_DIR/placement.conf
    mkdir -p $NOVA_CONF_DIR $PLACEMENT_CONF_DIR
    record() { local IFS=$'\t'; printf '%s\n' "$*" >> "$RECORD"; }
    run_process() { record run_process "$@"; }
    stop_process() { record stop_process "$@"; }
    setup_develop() { record setup_develop "$@"; }
    iniset_rpc_backend() { record iniset_rpc_backend "$@"; }
    configure_keystoneauth() { record configure_keystoneauth "$@"; }
    sudo() {
        # "sudo install -d -o stack DIR": no owner change in a test tree.
        if [[ "$1" == install ]]; then install -d "${@: -1}"; else "$@"; fi
    }
    # What devstack's create_nova_conf writes that the plugin edits.
    iniset $NOVA_CONF filter_scheduler enabled_filters "$NOVA_FILTERS"
    # ...and devstack's configure_placement (the database it needs).
    iniset $PLACEMENT_CONF placement_database connection sqlite://

    enable_plugin gpu-passthrough-filter $PLUGIN_URL
    GITDIR[gpu-passthrough-filter]=$REPO
    load_plugin_settings > /dev/null
    run_phase stack install
    run_phase stack post-config
    start_nova_compute
    run_phase stack extra
    ''')

READ_NOVA = textwrap.dedent(r'''
    import json, sys
    import nova.conf
    from nova.scheduler import filters
    conf = nova.conf.CONF
    args = []
    for path in sys.argv[2:]:
        args += ['--config-dir' if path.endswith('.d') else '--config-file',
                 path]
    conf(args, project='nova', prog=sys.argv[1], default_config_files=[],
         default_config_dirs=[])
    classes = filters.HostFilterHandler().get_matching_classes(
        conf.filter_scheduler.available_filters)
    print(json.dumps({
        'enabled_filters': list(conf.filter_scheduler.enabled_filters),
        'loadable': sorted(c.__name__ for c in classes),
        'pci_in_placement': conf.filter_scheduler.pci_in_placement,
        'report_in_placement': conf.pci.report_in_placement,
        'alias': [json.loads(a) for a in conf.pci.alias],
        'device_spec': [json.loads(d) for d in conf.pci.device_spec],
        'weight_classes': list(conf.filter_scheduler.weight_classes),
        'weights': {name: getattr(conf.filter_scheduler, name) for name in (
            'ram_weight_multiplier', 'cpu_weight_multiplier',
            'io_ops_weight_multiplier')},
    }))
    ''')


class RealDevstackTest(base.BaseTestCase):

    def setUp(self):
        super(RealDevstackTest, self).setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.record = os.path.join(self.root, 'record')
        open(self.record, 'w').close()
        bin_dir = os.path.dirname(sys.executable)
        env = {
            'PATH': bin_dir + os.pathsep + os.environ['PATH'],
            'HOME': self.root, 'DEVSTACK': DEVSTACK, 'REPO': REPO,
            'ROOT': self.root, 'RECORD': self.record,
            'PLUGIN_URL': 'https://opendev.org/x/gpu-passthrough-filter',
            'DEST': os.path.join(self.root, 'opt'),
            'DATA_DIR': os.path.join(self.root, 'data'),
            'STACK_USER': 'stack',
            'GPU_PASSTHROUGH_PCI_IN_PLACEMENT': 'True',
            'GPU_PASSTHROUGH_FAKE_GPUS': 'True',
            'GPU_PASSTHROUGH_BIN_DIR': bin_dir,
            'GPU_PASSTHROUGH_AGENT_CONF_DIR': os.path.join(
                self.root, 'etc', 'gpu-passthrough-filter'),
            'GPU_PASSTHROUGH_NOVA_PCI_FILE': self.compute_d(
                'gpu-passthrough.conf'),
            'GPU_PASSTHROUGH_COMPUTE_CONF': self.compute_d(
                'gpu-passthrough-placement.conf'),
        }
        proc = subprocess.run(['bash', '-c', SCRIPT], env=env,
                              capture_output=True, text=True, timeout=300)
        self.output = proc.stdout + proc.stderr
        self.assertEqual(0, proc.returncode, self.output[-4000:])

    def compute_d(self, name=''):
        return os.path.join(self.root, 'etc', 'nova', 'nova-compute.conf.d',
                            name)

    def nova(self, prog, *paths):
        proc = subprocess.run(
            [sys.executable, '-c', READ_NOVA, prog] + list(paths),
            capture_output=True, text=True, timeout=120)
        self.assertEqual(0, proc.returncode, proc.stderr[-3000:])
        return json.loads(proc.stdout.splitlines()[-1])

    def calls(self, name):
        with open(self.record) as f:
            return [line.rstrip('\n').split('\t')[1:] for line in f
                    if line.startswith(name + '\t')]

    def test_what_each_service_reads(self):
        etc = os.path.join(self.root, 'etc')
        scheduler = self.nova('nova-scheduler',
                              os.path.join(etc, 'nova', 'nova.conf'))
        compute = self.nova('nova-compute',
                            os.path.join(etc, 'nova', 'nova-cpu.conf'),
                            self.compute_d().rstrip('/'))

        # nova-scheduler: the plugins load, nova's PCI filters are there
        # in their fast forms, ours right before them; PCI in Placement on.
        filters = scheduler['enabled_filters']
        fast = ['FastPciPassthroughFilter', 'FastNUMATopologyFilter']
        for name in ['GPUPassthroughFilter'] + fast:
            self.assertIn(name, scheduler['loadable'])
        self.assertEqual(['GPUPassthroughFilter'] + fast,
                         filters[filters.index('GPUPassthroughFilter'):][:3])
        self.assertIn('gpu_passthrough_filter.scheduler.all_weighers',
                      scheduler['weight_classes'])
        self.assertEqual({option.name: option.value for option in
                          recommended.SCHEDULER_WEIGHT_OPTIONS},
                         scheduler['weights'])
        self.assertTrue(scheduler['pci_in_placement'])

        # nova-compute: report_in_placement survived start_nova_compute's
        # copy of nova.conf, and the agent's device_spec is there.
        self.assertTrue(compute['report_in_placement'])
        self.assertTrue(compute['device_spec'])
        self.assertTrue(all(spec.get('resource_class')
                            for spec in compute['device_spec']))

        # nova-api/scheduler know every alias the computes use, with the
        # same resource class.
        controller = {a['name']: a for a in scheduler['alias']}
        for alias in compute['alias']:
            self.assertEqual(alias, controller.get(alias['name']))
        classes = {spec['resource_class'] for spec in compute['device_spec']}
        self.assertEqual(classes, {a['resource_class']
                                   for a in compute['alias']})
        # The scenario suite's default flavor alias is one of them.
        from tests.scenario import test_devstack
        self.assertIn(test_devstack.DEFAULT_ALIAS, controller)
        self.assertEqual(classes, {controller[test_devstack.DEFAULT_ALIAS][
            'resource_class']})

        # Placement: the recommended options.
        from oslo_config import cfg
        from placement import conf as placement_conf
        conf = cfg.ConfigOpts()
        placement_conf.register_opts(conf)
        conf([], project='placement', default_config_files=[
            os.path.join(etc, 'placement', 'placement.conf')])
        self.assertEqual(1000, conf.placement.max_allocation_candidates)
        self.assertEqual(
            'breadth-first',
            conf.placement.allocation_candidates_generation_strategy)
        self.assertTrue(conf.workarounds.optimize_for_wide_provider_trees)

        # The agent was started as a service.
        self.assertEqual(['gpu-pt-agent'],
                         [c[0] for c in self.calls('run_process')
                          if c[0] == 'gpu-pt-agent'])
