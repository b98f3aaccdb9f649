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
"""The pure core of the inventory imports no nova, oslo or openstacksdk."""

import ast

from oslotest import base

from gpu_passthrough_filter.inventory import isolation
from gpu_passthrough_filter.inventory import locality
from gpu_passthrough_filter.inventory import model
from gpu_passthrough_filter.inventory import pciids
from gpu_passthrough_filter.inventory import sysfs

FORBIDDEN = ('nova', 'oslo_config', 'oslo_log', 'oslo_utils', 'openstack',
             'keystoneauth1')


def imported_modules(module):
    with open(module.__file__) as stream:
        tree = ast.parse(stream.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.module


class PurityTest(base.BaseTestCase):

    def test_no_service_imports(self):
        for module in (model, locality, isolation, pciids, sysfs):
            for name in imported_modules(module):
                self.assertNotIn(name.split('.')[0], FORBIDDEN,
                                 module.__name__)
