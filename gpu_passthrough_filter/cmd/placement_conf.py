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
"""``gpu-passthrough-agent placement-conf enable``.

Sets the Placement options that multi-GPU flavors with nova's PCI in
Placement need (:data:`gpu_passthrough_filter.recommended.
PLACEMENT_OPTIONS`) in a placement.conf, in place and idempotently. Run it
on every host of the Placement API, then restart Placement.

Exit status: 0 on success (changed or not), 1 when the file cannot be
read, parsed or written.
"""

import sys

from gpu_passthrough_filter.cmd import config_edit
from gpu_passthrough_filter.cmd import novaconf
from gpu_passthrough_filter import recommended

DEFAULT_CONFIG_FILE = '/etc/placement/placement.conf'


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'placement-conf',
        help="Set the Placement options GPU flavors need.",
        description="Set [placement] max_allocation_candidates, "
                    "allocation_candidates_generation_strategy and "
                    "[workarounds] optimize_for_wide_provider_trees in a "
                    "placement.conf, keeping comments and other options. "
                    "Without them an 8-GPU flavor with PCI in Placement "
                    "makes Placement enumerate every ordering of every "
                    "free GPU set (minutes per request). Run it where the "
                    "Placement API runs, then restart Placement.")
    actions = parser.add_subparsers(dest='action', metavar='ACTION')
    actions.required = True
    enable = actions.add_parser(
        'enable', help='Write the recommended options.')
    enable.add_argument(
        '--config-file', default=DEFAULT_CONFIG_FILE,
        help='The placement.conf to edit (default: %(default)s).')
    enable.add_argument(
        '--dry-run', action='store_true',
        help='Print the change as a unified diff; write nothing.')
    enable.set_defaults(func=run)
    return parser


def run(args, out=None, err=None):
    """Write the recommended Placement options into ``args.config_file``.

    :param args: the argparse namespace (``config_file``, ``dry_run``).
    :param out: stream for the report; standard output by default.
    :param err: stream for errors; standard error by default.
    :returns: the exit status.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    options = [(o.group, o.name, o.value)
               for o in recommended.PLACEMENT_OPTIONS]
    return config_edit.edit_file(
        args.config_file,
        lambda text: novaconf.configure_values(text, options),
        args.dry_run, out, err)
