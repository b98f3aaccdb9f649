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
"""devstack/plugin.sh: which phase does what on which node.

bash sources ``devstack/settings`` then ``devstack/plugin.sh MODE PHASE``,
as devstack does, with ``errexit`` on as in stack.sh. The devstack functions
the plugin calls are replaced by recorders that append one tab-separated
line per call to a file; ``is_service_enabled``, ``enable_service`` and
``trueorfalse`` behave like devstack's. The ``gpu-passthrough-agent`` and
``python3`` found in the fake bin directory record their arguments too.
What the nova-conf command does to nova.conf is tested in test_novaconf.
"""

import os
import subprocess
import textwrap

import fixtures
from oslotest import base

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__),
                                    '..', '..', '..'))

STUBS = textwrap.dedent(r'''
    set -o errexit
    record() {
        local IFS=$'\t'
        printf '%s\n' "$*" >> "$RECORD"
    }
    is_service_enabled() {
        local service
        for service in "$@"; do
            if [[ ",$ENABLED_SERVICES," == *",$service,"* ]]; then
                return 0
            fi
        done
        return 1
    }
    enable_service() { ENABLED_SERVICES+=",$1"; }
    trueorfalse() {
        local value=${!2:-$1}
        case "$value" in
            1|[yY]|[yY]es|[tT]rue|True|TRUE|on|On) echo True ;;
            *) echo False ;;
        esac
    }
    define_plugin() { :; }
    get_python_exec_prefix() { echo "$FAKE_BIN"; }
    iniget() { record iniget "$@"; echo "$FAKE_INIGET"; }
    die() { record die "$@"; return 1; }
    for fn in echo_summary setup_develop iniset iniset_multiline \
              run_process stop_process configure_keystoneauth sudo; do
        eval "$fn() { record $fn \"\$@\"; }"
    done
    ''')

FAKE_AGENT = textwrap.dedent(r'''
    #!/bin/bash
    IFS=$'\t'
    printf '%s\n' "gpu-passthrough-agent	$*" >> "$RECORD"
    if [[ "$1 $2" == "nova-conf alias" ]]; then
        echo '{"name":"fake-alias"}'
    fi
    if [[ "$1" == publish && -n "$FAKE_PUBLISH_WRITES" ]]; then
        mkdir -p "$(dirname "$GPU_PASSTHROUGH_NOVA_PCI_FILE")"
        touch "$GPU_PASSTHROUGH_NOVA_PCI_FILE"
    fi
    ''').lstrip()

FAKE_PYTHON = textwrap.dedent(r'''
    #!/bin/bash
    IFS=$'\t'
    printf '%s\n' "python3	$*" >> "$RECORD"
    ''').lstrip()

CONTROLLER = 'key,n-api,n-cond,n-sch,placement-api,g-api,tempest'
COMPUTE = 'n-cpu,placement-client'
ALL_IN_ONE = CONTROLLER + ',' + COMPUTE
NOVA_FILTERS = 'ComputeFilter,ImagePropertiesFilter,SameHostFilter'


class PluginPhasesTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.bin = os.path.join(self.tmp, 'bin')
        os.mkdir(self.bin)
        for name, text in (('gpu-passthrough-agent', FAKE_AGENT),
                           ('python3', FAKE_PYTHON)):
            path = os.path.join(self.bin, name)
            with open(path, 'w') as f:
                f.write(text)
            os.chmod(path, 0o755)
        self.record = os.path.join(self.tmp, 'record')
        self.pci_file = os.path.join(self.tmp, 'nova-compute.conf.d',
                                     'gpu-passthrough.conf')
        self.agent_conf_dir = os.path.join(self.tmp, 'etc-gpt')
        self.agent_conf = os.path.join(self.agent_conf_dir, 'agent.conf')
        self.data_dir = os.path.join(self.tmp, 'data')
        self.compute_conf = os.path.join(self.tmp, 'nova-compute.conf.d',
                                         'gpu-passthrough-placement.conf')

    def source(self, mode, phase='', services=ALL_IN_ONE, **env):
        """Run one phase; return the recorded calls as tuples."""
        environ = {
            'PATH': os.environ['PATH'],
            'RECORD': self.record,
            'FAKE_BIN': self.bin,
            'FAKE_PUBLISH_WRITES': '1',
            'FAKE_INIGET': '',
            'ENABLED_SERVICES': services,
            'DEST': '/opt/stack',
            'DATA_DIR': self.data_dir,
            'STACK_USER': 'stack',
            'NOVA_CONF': '/etc/nova/nova.conf',
            'NOVA_CPU_CONF': '/etc/nova/nova-cpu.conf',
            'NOVA_FILTERS': NOVA_FILTERS,
            'TEMPEST_CONFIG': '/opt/stack/tempest/etc/tempest.conf',
            'REGION_NAME': 'RegionOne',
            'ENABLE_DEBUG_LOG_LEVEL': 'True',
            'GPU_PASSTHROUGH_AGENT_CONF_DIR': self.agent_conf_dir,
            'GPU_PASSTHROUGH_DATA_DIR': self.data_dir,
            'GPU_PASSTHROUGH_NOVA_PCI_FILE': self.pci_file,
            'GPU_PASSTHROUGH_COMPUTE_CONF': self.compute_conf,
            'PLACEMENT_CONF': '/etc/placement/placement.conf',
        }
        environ.update(env)
        open(self.record, 'w').close()
        script = (STUBS + 'source devstack/settings\n'
                  'source devstack/plugin.sh "$@"\n')
        proc = subprocess.run(
            ['bash', '-c', script, 'devstack', mode, phase], cwd=REPO,
            env=environ, capture_output=True, text=True)
        with open(self.record) as f:
            calls = [tuple(line.rstrip('\n').split('\t')) for line in f]
        self.assertEqual(0, proc.returncode,
                         'stderr: %s\ncalls: %s' % (proc.stderr, calls))
        return calls

    def agent_calls(self, calls):
        return [c[1:] for c in calls if c[0] == 'gpu-passthrough-agent']

    def named(self, calls, name):
        return [c[1:] for c in calls if c[0] == name]

    # stack install

    def test_install_on_controller_and_compute(self):
        for services in (CONTROLLER, COMPUTE):
            calls = self.source('stack', 'install', services=services)
            self.assertEqual([('/opt/stack/gpu-passthrough-filter',)],
                             self.named(calls, 'setup_develop'), services)

    def test_install_nothing_on_a_storage_node(self):
        calls = self.source('stack', 'install', services='c-vol,c-bak')
        self.assertEqual([], calls)

    # stack post-config

    def test_post_config_on_controller_enables_the_filter(self):
        calls = self.source('stack', 'post-config', services=CONTROLLER)
        self.assertEqual(
            [('nova-conf', 'enable', '--weigher', '--add-nova-gpu-filters',
              '--fast-nova-filters', '--packing-weights',
              '--config-file', '/etc/nova/nova.conf'),
             ('nova-conf', 'alias', '10de:26b9')],
            self.agent_calls(calls))
        # No compute here: no agent, no PCI in Placement; only the aliases
        # nova-api needs to accept GPU flavors' servers, from the agent's
        # own naming rule.
        self.assertEqual([], self.named(calls, 'iniset'))
        self.assertEqual(
            [('/etc/nova/nova.conf', 'pci', 'alias', '{"name":"fake-alias"}')],
            self.named(calls, 'iniset_multiline'))

    def test_post_config_on_compute_only_node_does_not_touch_nova_conf(self):
        calls = self.source('stack', 'post-config', services=COMPUTE)
        agent = self.agent_calls(calls)
        self.assertNotIn('nova-conf', [c[0] for c in agent])
        inisets = self.named(calls, 'iniset')
        self.assertIn((self.agent_conf, 'agent', 'sysfs_root', '/'),
                      inisets)
        self.assertIn((self.agent_conf, 'agent', 'publishers',
                       'nova_pci,placement'), inisets)
        self.assertIn((self.agent_conf, 'nova_pci', 'output_file',
                       self.pci_file), inisets)
        self.assertIn((self.agent_conf, 'placement', 'placement'),
                      self.named(calls, 'configure_keystoneauth'))
        # The nova [pci] file is written once before nova-compute starts,
        # by the nova_pci publisher alone.
        override = os.path.join(self.agent_conf_dir, 'nova-pci-only.conf')
        self.assertIn((override, 'agent', 'publishers', 'nova_pci'),
                      inisets)
        self.assertEqual(
            [('publish', '--once', '--config-file', self.agent_conf,
              '--config-file', override)], agent)
        self.assertFalse(any(v[:2] == ('/etc/nova/nova.conf',)
                             for v in inisets))

    def test_post_config_without_weigher(self):
        calls = self.source('stack', 'post-config', services=CONTROLLER,
                            GPU_PASSTHROUGH_ENABLE_WEIGHER='False')
        self.assertEqual(
            [('nova-conf', 'enable', '--no-weigher', '--add-nova-gpu-filters',
              '--fast-nova-filters', '--packing-weights',
              '--config-file', '/etc/nova/nova.conf')],
            self.agent_calls(calls)[:1])

    def test_post_config_pci_in_placement(self):
        calls = self.source('stack', 'post-config',
                            GPU_PASSTHROUGH_PCI_IN_PLACEMENT='True')
        inisets = self.named(calls, 'iniset')
        self.assertIn(('/etc/nova/nova.conf', 'filter_scheduler',
                       'pci_in_placement', 'True'), inisets)
        # Not in nova-cpu.conf: devstack copies nova.conf over it when it
        # starts nova-compute.
        self.assertIn((self.compute_conf, 'pci', 'report_in_placement',
                       'True'), inisets)
        self.assertNotIn('/etc/nova/nova-cpu.conf', [i[0] for i in inisets])
        self.assertIn((self.agent_conf, 'nova_pci', 'report_in_placement',
                       'True'), inisets)
        self.assertIn(('placement-conf', 'enable', '--config-file',
                       '/etc/placement/placement.conf'),
                      self.agent_calls(calls))
        # The controller's aliases carry the resource class too.
        self.assertIn(('nova-conf', 'alias', '--placement', '10de:26b9'),
                      self.agent_calls(calls))

    def test_post_config_without_pci_in_placement_leaves_nova_alone(self):
        calls = self.source('stack', 'post-config')
        self.assertEqual(
            [], [c for c in self.named(calls, 'iniset')
                 if c[0].startswith('/etc/nova/') and c[1:3] != (
                     'pci', 'alias')])

    def test_post_config_fake_gpus(self):
        calls = self.source('stack', 'post-config', services=COMPUTE,
                            GPU_PASSTHROUGH_FAKE_GPUS='True',
                            GPU_PASSTHROUGH_FAKE_TOPOLOGY='dgx_a100_partial')
        fake_root = os.path.join(self.data_dir, 'fake-sysfs')
        self.assertEqual(
            [('-m', 'gpu_passthrough_filter.testing.topologies',
              '--topology', 'dgx_a100_partial', '--output', fake_root)],
            self.named(calls, 'python3'))
        self.assertIn((self.agent_conf, 'agent', 'sysfs_root', fake_root),
                      self.named(calls, 'iniset'))

    def test_post_config_fails_when_no_pci_file_was_written(self):
        environ = dict(FAKE_PUBLISH_WRITES='')
        self.assertRaises(AssertionError, self.source, 'stack',
                          'post-config', services=COMPUTE, **environ)
        with open(self.record) as f:
            self.assertIn('die\t', f.read())

    def test_post_config_without_nova_pci_publisher_no_pre_start_publish(self):
        calls = self.source('stack', 'post-config', services=COMPUTE,
                            GPU_PASSTHROUGH_AGENT_PUBLISHERS='placement')
        self.assertEqual([], self.agent_calls(calls))

    # stack extra

    def test_extra_starts_the_agent_on_computes(self):
        calls = self.source('stack', 'extra', services=COMPUTE)
        agent = os.path.join(self.bin, 'gpu-passthrough-agent')
        self.assertEqual(
            [('gpu-pt-agent', '%s run --config-file %s' % (
                agent, self.agent_conf))],
            self.named(calls, 'run_process'))

    def test_extra_on_controller_without_compute_starts_nothing(self):
        calls = self.source('stack', 'extra', services=CONTROLLER)
        self.assertEqual([], self.named(calls, 'run_process'))

    def test_agent_can_be_kept_off_computes(self):
        calls = self.source('stack', 'extra', services=COMPUTE,
                            GPU_PASSTHROUGH_AGENT_ON_COMPUTES='False')
        self.assertEqual([], self.named(calls, 'run_process'))

    def test_agent_enabled_by_hand_without_compute(self):
        calls = self.source('stack', 'extra',
                            services='n-sch,gpu-pt-agent')
        self.assertEqual(['gpu-pt-agent'],
                         [c[0] for c in self.named(calls, 'run_process')])

    # stack test-config

    def test_test_config_appends_to_devstack_filters(self):
        calls = self.source('stack', 'test-config', services=CONTROLLER)
        self.assertEqual(
            [('/opt/stack/tempest/etc/tempest.conf',
              'compute-feature-enabled', 'scheduler_enabled_filters',
              NOVA_FILTERS + ',GPUPassthroughFilter')],
            self.named(calls, 'iniset'))

    def test_test_config_keeps_an_existing_value_with_ours(self):
        calls = self.source('stack', 'test-config', services=CONTROLLER,
                            FAKE_INIGET='A,GPUPassthroughFilter,B')
        self.assertEqual(
            ['A,GPUPassthroughFilter,B'],
            [c[3] for c in self.named(calls, 'iniset')])

    def test_test_config_without_tempest(self):
        calls = self.source('stack', 'test-config', services=COMPUTE)
        self.assertEqual([], calls)

    # unstack, clean

    def test_unstack_stops_the_agent(self):
        calls = self.source('unstack')
        self.assertEqual([('stop_process', 'gpu-pt-agent')], calls)

    def test_clean_removes_the_agent_files(self):
        calls = self.source('clean')
        self.assertEqual(
            [('sudo', 'rm', '-rf', self.agent_conf_dir, self.data_dir),
             ('sudo', 'rm', '-f', self.pci_file)], calls)

    def test_other_phases_do_nothing(self):
        for mode, phase in (('stack', 'pre-install'), ('stack', 'unknown'),
                            ('override_defaults', ''), ('source', '')):
            self.assertEqual([], self.source(mode, phase), (mode, phase))
