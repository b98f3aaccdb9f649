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
"""The command lines an operator meets first, tried as a new user would."""

import contextlib
import importlib.metadata
import io
import logging
import sys
from unittest import mock
import warnings

from oslotest import base

from gpu_passthrough_filter.cmd import agent
from gpu_passthrough_filter.cmd import sim


class SimCommandLineTest(base.BaseTestCase):

    def setUp(self):
        super(SimCommandLineTest, self).setUp()
        # NOTE: the simulator silences logging process-wide (nova's
        # warnings would drown its table); later tests of this worker
        # capture logs.
        self.addCleanup(logging.disable, logging.NOTSET)
        saved = list(warnings.filters)
        self.addCleanup(warnings.filters.__setitem__, slice(None), saved)

    def run_sim(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = sim.main(list(argv))
            except SystemExit as exc:
                status = exc.code
        return status, out.getvalue() + err.getvalue()

    def test_non_positive_target_is_refused(self):
        status, text = self.run_sim('--target', '-1')
        self.assertEqual(2, status)
        self.assertIn('-1 is not above 0', text)

    def test_negative_plain_vm_factor_is_refused(self):
        status, text = self.run_sim('--plain-vm-factor', '-2')
        self.assertEqual(2, status)
        self.assertIn('-2 is below 0', text)

    def test_unknown_arrival_order_is_refused(self):
        status, text = self.run_sim('--arrival-order', 'largest')
        self.assertEqual(2, status)
        self.assertIn("invalid choice: 'largest'", text)

    def test_unknown_trace_lists_the_bundled_ones(self):
        status, text = self.run_sim('--trace', 'nosuch', '--no-plot')
        self.assertEqual(2, status)
        self.assertIn('bundled: default, multigpu20', text)

    def test_without_nova_it_says_to_install_the_sim_extra(self):
        # A None entry makes "import nova" raise ImportError, as in an
        # environment without the [sim] extra.
        with mock.patch.dict(sys.modules, {'nova': None}):
            status, text = self.run_sim()
        self.assertEqual(2, status)
        self.assertIn('".[sim]"', text)


class VersionTest(base.BaseTestCase):

    def test_version_is_the_installed_release_string(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertRaises(SystemExit, agent.main, ['--version'])
        self.assertEqual(importlib.metadata.version('gpu-passthrough-filter'),
                         out.getvalue().strip())


class PublishCommandLineTest(base.BaseTestCase):

    def test_once_is_optional_and_a_missing_config_is_warned(self):
        """``publish`` alone parses; without any config file it says so."""
        args = agent.build_parser(['publish']).parse_args(['publish'])
        self.assertFalse(args.once)
        from gpu_passthrough_filter.agent import daemon
        from gpu_passthrough_filter.cmd import common
        from gpu_passthrough_filter.cmd import publish
        logged = []
        with mock.patch.object(daemon, 'DEFAULT_CONFIG_FILE',
                               '/nonexistent/agent.conf'), \
                mock.patch.object(common, 'setup_fallback_logging'), \
                mock.patch.object(publish.LOG, 'warning',
                                  side_effect=lambda *a: logged.append(a)), \
                mock.patch.object(common, 'load',
                                  side_effect=SystemExit(9)):
            self.assertRaises(SystemExit, publish.run, args)
        self.assertIn('No configuration file', logged[0][0])
