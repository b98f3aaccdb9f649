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
"""The json publisher: the full inventory, to a file or stdout."""

import io
import json
import os

import fixtures
from oslotest import base

from gpu_passthrough_filter.agent import json_publisher
from gpu_passthrough_filter.inventory import model
from tests.unit.agent import fixtures as agent_fixtures

M = agent_fixtures.MACHINES


class JsonPublisherTest(base.BaseTestCase):

    def test_file_round_trips_and_is_rewritten_only_on_change(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'inventory.json')
        conf = agent_fixtures.agent_conf(
            self, json_publisher={'output_file': path})
        publisher = json_publisher.JsonPublisher(conf)
        inventory = agent_fixtures.machine_inventory(self, M.dgx_a100_like)
        self.assertTrue(publisher.publish(inventory).changed)
        self.assertFalse(publisher.publish(inventory).changed)
        with open(path) as stream:
            self.assertEqual(inventory,
                             model.HostInventory.from_json(stream.read()))

    def test_stdout(self):
        conf = agent_fixtures.agent_conf(self)
        out = io.StringIO()
        inventory = model.HostInventory(hostname='h')
        json_publisher.JsonPublisher(conf, stdout=out).publish(inventory)
        self.assertEqual('h', json.loads(out.getvalue())['hostname'])
