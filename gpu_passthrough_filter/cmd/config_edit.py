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
"""Edit a service's config file in place: the shared part of the
``nova-conf`` and ``placement-conf`` commands."""

import difflib

from gpu_passthrough_filter.cmd import novaconf
from gpu_passthrough_filter import files


def edit_file(path, edit, dry_run, out, err):
    """Apply ``edit`` to the file at ``path``; report each change.

    :param path: the config file.
    :param edit: ``edit(text) -> EditResult`` (:mod:`..novaconf`).
    :param dry_run: print a unified diff instead of writing.
    :param out: stream for the report.
    :param err: stream for errors.
    :returns: the exit status: 0, or 1 when the file cannot be read,
        parsed or written.
    """
    try:
        with open(path) as f:
            before = f.read()
        result = edit(before)
    except (OSError, novaconf.IniParseError) as e:
        err.write('%s: %s\n' % (path, e))
        return 1
    if dry_run:
        out.writelines(difflib.unified_diff(
            before.splitlines(keepends=True),
            result.text.splitlines(keepends=True), path,
            path + ' (edited)'))
        return 0
    if result.changes:
        try:
            files.replace_atomically(path, result.text)
        except OSError as e:
            err.write('%s: %s\n' % (path, e))
            return 1
    for change in result.changes or ['unchanged']:
        out.write('%s: %s\n' % (path, change))
    return 0
