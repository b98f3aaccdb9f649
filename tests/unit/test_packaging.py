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
"""What the wheel ships for operators: the systemd unit, the samples.

The unit's commands are parsed by the agent's own parser, its writable
path is where the nova_pci publisher writes by default, and it runs
without root; setup.cfg's data_files name files that exist.
"""

import configparser
import os
import shlex

from oslotest import base

from gpu_passthrough_filter.cmd import agent
from gpu_passthrough_filter.conf import publishers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
UNIT = os.path.join(ROOT, 'etc', 'gpu-passthrough-filter',
                    'gpu-passthrough-agent.service')


def _unit():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    with open(UNIT) as stream:
        parser.read_file(stream)
    return parser['Service']


class SystemdUnitTest(base.BaseTestCase):

    def test_commands_are_the_agents(self):
        """ExecStart(Pre) run sub-commands the agent's parser accepts."""
        service = _unit()
        for key, command in (('ExecStartPre', 'publish'),
                             ('ExecStart', 'run')):
            words = shlex.split(service[key].lstrip('-'))
            self.assertEqual(['/usr/bin/env', 'gpu-passthrough-agent',
                              command], words[:3], key)
            args = agent.build_parser(words[2:]).parse_args(words[2:])
            self.assertEqual(command, args.command)

    def test_writable_path_holds_the_generated_file(self):
        """ReadWritePaths lets the agent write its nova [pci] file."""
        default = next(opt.default for opt in publishers.NOVA_PCI_OPTS
                       if opt.name == 'output_file')
        writable = [path.lstrip('-')
                    for path in _unit()['ReadWritePaths'].split()]
        self.assertIn(os.path.dirname(default), writable)

    def test_no_privilege(self):
        service = _unit()
        self.assertNotEqual('root', service['User'])
        self.assertEqual('', service['CapabilityBoundingSet'])
        self.assertEqual('true', service['NoNewPrivileges'])
        self.assertEqual('strict', service['ProtectSystem'])


class DataFilesTest(base.BaseTestCase):

    def test_every_data_file_exists_and_the_unit_is_shipped(self):
        setup = configparser.ConfigParser()
        setup.read(os.path.join(ROOT, 'setup.cfg'))
        shipped = []
        for line in setup['files']['data_files'].strip().splitlines():
            _target, _, sources = line.partition('=')
            shipped += sources.split()
        self.assertIn('etc/gpu-passthrough-filter/'
                      'gpu-passthrough-agent.service', shipped)
        for path in shipped:
            self.assertTrue(os.path.isfile(os.path.join(ROOT, path)), path)
