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
"""The one atomic file writer: mode kept, link kept, nothing left over."""

import os
import stat

import fixtures
from oslotest import base

from gpu_passthrough_filter import files


class ReplaceAtomicallyTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(self.dir, 'nova.conf')

    def mode(self, path):
        return stat.S_IMODE(os.stat(path).st_mode)

    def test_new_file_gets_the_default_mode(self):
        files.replace_atomically(self.path, 'a\n')
        self.assertEqual('a\n', open(self.path).read())
        self.assertEqual(0o644, self.mode(self.path))

    def test_an_existing_files_mode_survives(self):
        files.replace_atomically(self.path, 'a\n')
        os.chmod(self.path, 0o640)
        files.replace_atomically(self.path, 'b\n')
        self.assertEqual(('b\n', 0o640),
                         (open(self.path).read(), self.mode(self.path)))

    def test_a_symlink_survives_and_its_target_changes(self):
        real = os.path.join(self.dir, 'real.conf')
        files.replace_atomically(real, 'a\n')
        os.symlink(real, self.path)
        files.replace_atomically(self.path, 'b\n')
        self.assertTrue(os.path.islink(self.path))
        self.assertEqual('b\n', open(real).read())

    def test_a_missing_directory_is_named(self):
        missing = os.path.join(self.dir, 'nova.conf.d', 'x.conf')
        error = self.assertRaises(FileNotFoundError,
                                  files.replace_atomically, missing, 'a')
        self.assertIn(os.path.join(self.dir, 'nova.conf.d'), str(error))

    def test_nothing_is_left_when_writing_fails(self):
        self.useFixture(fixtures.MonkeyPatch(
            'os.replace', lambda *a: (_ for _ in ()).throw(
                PermissionError(13, 'denied'))))
        self.assertRaises(PermissionError, files.replace_atomically,
                          self.path, 'a')
        self.assertEqual([], os.listdir(self.dir))
