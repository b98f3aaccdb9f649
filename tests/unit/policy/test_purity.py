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
"""The policy core imports no nova, oslo or openstacksdk."""

import ast
import os
import subprocess
import sys

from oslotest import base

from gpu_passthrough_filter import policy

FORBIDDEN = ('nova', 'oslo_config', 'oslo_log', 'oslo_utils',
             'oslo_concurrency', 'oslo_serialization', 'openstack',
             'keystoneauth1', 'stevedore')


def policy_modules():
    directory = os.path.dirname(policy.__file__)
    return sorted(os.path.join(directory, name)
                  for name in os.listdir(directory) if name.endswith('.py'))


def imported_names(path):
    with open(path) as stream:
        tree = ast.parse(stream.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


class PurityTest(base.BaseTestCase):

    def test_sources_import_no_service_library(self):
        """No policy module names a forbidden package in an import."""
        paths = policy_modules()
        self.assertGreaterEqual(len(paths), 5)
        for path in paths:
            for name in imported_names(path):
                self.assertNotIn(name.split('.')[0], FORBIDDEN, path)

    def test_importing_loads_no_service_library(self):
        """Importing every policy module loads no forbidden package.

        Checked in a fresh interpreter's sys.modules.
        """
        names = ['gpu_passthrough_filter.policy.' +
                 os.path.basename(p)[:-3] for p in policy_modules()]
        code = ('import importlib, sys\n'
                'for name in %r: importlib.import_module(name)\n'
                'print(sorted({m.split(".")[0] for m in sys.modules}))\n'
                % names)
        output = subprocess.check_output([sys.executable, '-c', code],
                                         universal_newlines=True)
        loaded = set(ast.literal_eval(output))
        self.assertEqual(set(), loaded & set(FORBIDDEN))
