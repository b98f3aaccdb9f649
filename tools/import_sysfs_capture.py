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
"""Import a captured sysfs tree as test data, restoring its symlinks.

Usage: ``python tools/import_sysfs_capture.py SRC_ROOT DEST_ROOT``

``SRC_ROOT`` holds ``sys/`` as unpacked from an hwloc-gather-topology
archive by a tool that flattened every symlink into a regular file holding
the link's target (``sys/bus/pci/devices/0000:17:00.0`` is a file
containing ``../../../devices/pci0000:17/0000:17:00.0``). Real sysfs never
has such files, so the reader must not learn to accept them: this script
turns each one back into the relative symlink it was. A sysfs attribute
never starts with ``../``, which is how link files are told apart.

Only what a PCI/NUMA reader looks at is kept: ``sys/bus/pci``, the PCI
hierarchy under ``sys/devices/pci*`` (without the accelerators' own
``ve/`` driver-class directories), ``sys/devices/system/node`` (without the
``memoryN`` block links), ``sys/kernel`` and ``sys/class``.
"""

import os
import shutil
import sys

KEEP = ('sys/bus/pci', 'sys/devices/system/node', 'sys/kernel', 'sys/class')
SKIP_DIRS = ('ve',)


def _is_link_file(path):
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    if os.path.getsize(path) > 4096:
        return False
    with open(path, 'rb') as handle:
        head = handle.read(4096)
    return head.startswith(b'../') and b'\n' not in head.rstrip(b'\n')


def _copy_tree(src, dest):
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [name for name in dirnames
                       if name not in SKIP_DIRS
                       and not name.startswith('memory')]
        rel = os.path.relpath(dirpath, src)
        os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for name in filenames:
            source = os.path.join(dirpath, name)
            target = os.path.join(dest, rel, name)
            if name.startswith('memory') and _is_link_file(source):
                continue
            if _is_link_file(source):
                with open(source) as handle:
                    os.symlink(handle.read().strip(), target)
            else:
                shutil.copyfile(source, target)


def main(argv):
    src_root, dest_root = argv
    parts = list(KEEP) + sorted(
        os.path.join('sys/devices', name)
        for name in os.listdir(os.path.join(src_root, 'sys/devices'))
        if name.startswith('pci'))
    for part in parts:
        if os.path.isdir(os.path.join(src_root, part)):
            _copy_tree(os.path.join(src_root, part),
                       os.path.join(dest_root, part))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
