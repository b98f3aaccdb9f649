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
"""The committed sample configs are what oslo-config-generator writes now.

An option added or changed without ``tox -e genconfig`` fails here.
"""

import os

import fixtures
from oslo_config import generator
from oslotest import base

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
GENERATORS = ('agent-config-generator.conf',
              'scheduler-config-generator.conf')


class SampleConfigTest(base.BaseTestCase):

    def test_samples_are_current(self):
        out = self.useFixture(fixtures.TempDir()).path
        for name in GENERATORS:
            path = os.path.join(ROOT, 'etc', 'gpu-passthrough-filter', name)
            with open(path) as stream:
                # NOTE: namespace repeats: read the lines, not an ini.
                lines = stream.read().splitlines()
            namespaces = [line.split('=', 1)[1].strip() for line in lines
                          if line.startswith('namespace')]
            sample = [line.split('=', 1)[1].strip() for line in lines
                      if line.startswith('output_file')][0]
            fresh = os.path.join(out, os.path.basename(sample))
            argv = ['--output-file', fresh, '--wrap-width', '79']
            for namespace in namespaces:
                argv += ['--namespace', namespace]
            conf = generator.cfg.ConfigOpts()
            generator.register_cli_opts(conf)
            conf(argv)
            generator.generate(conf)
            with open(os.path.join(ROOT, sample)) as stream:
                committed = stream.read()
            with open(fresh) as stream:
                self.assertEqual(committed, stream.read(),
                                 '%s is stale: run tox -e genconfig' % sample)
