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
"""Replacing a config file so that readers never see half of it.

One writer for every file the project writes (the agent's nova file, the
``nova-conf`` and ``placement-conf`` edits): a temporary file beside the
target, flushed to disk, given the old file's mode and owner, then
renamed over it.

Pure module: no nova, oslo or openstacksdk import.
"""

import os
import tempfile


def replace_atomically(path, text, new_file_mode=0o644):
    """Replace (or create) the file at ``path`` with ``text``.

    An existing file keeps its mode and, when allowed, its owner (an
    operator's ``chmod 0640`` survives); a new one gets ``new_file_mode``.
    A symlink is followed, so the link itself survives.

    :param path: the file.
    :param text: the new content.
    :param new_file_mode: the mode of a file that did not exist.
    :raises FileNotFoundError: naming the directory, when it is missing
        (rather than the temporary file's name).
    :raises OSError: on any other I/O error; the temporary file is removed.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(2, 'directory %s does not exist' % directory,
                                directory)
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(dir=directory,
                               prefix='.%s.' % os.path.basename(target))
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, old.st_mode & 0o7777 if old else new_file_mode)
        if old is not None:
            try:
                os.chown(tmp, old.st_uid, old.st_gid)
            except PermissionError:
                # NOTE: only root can give a file away; a user editing
                # their own file already owns the new one.
                pass
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
