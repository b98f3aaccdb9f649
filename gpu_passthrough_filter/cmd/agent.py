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
"""``gpu-passthrough-agent``: the compute-node agent's command line.

Each sub-command lives in its own module under :mod:`gpu_passthrough_filter.
cmd` and exposes ``add_parser(subparsers)``, which registers the
sub-command and sets ``func`` (``func(args) -> exit status``) as a default.
"""

import argparse
import importlib
import sys

import gpu_passthrough_filter

#: Sub-command name -> module providing it, in the order ``--help`` lists
#: them.
SUBCOMMANDS = {
    'discover': 'gpu_passthrough_filter.cmd.discover',
    'cordon': 'gpu_passthrough_filter.cmd.cordon',
    'uncordon': 'gpu_passthrough_filter.cmd.cordon',
    'cordons': 'gpu_passthrough_filter.cmd.cordon',
    'nova-conf': 'gpu_passthrough_filter.cmd.nova_conf',
    'placement-conf': 'gpu_passthrough_filter.cmd.placement_conf',
    'publish': 'gpu_passthrough_filter.cmd.publish',
    'run': 'gpu_passthrough_filter.cmd.run',
}
#: Each module once (one module may register several sub-commands).
SUBCOMMAND_MODULES = tuple(dict.fromkeys(SUBCOMMANDS.values()))


class _VersionAction(argparse.Action):
    """``--version``: the version is read only when asked for.

    See :func:`gpu_passthrough_filter.__getattr__`.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        # As argparse's own "version" action: on stdout.
        sys.stdout.write(gpu_passthrough_filter.__version__ + '\n')
        parser.exit()


def build_parser(argv=None):
    """The argument parser; with ``argv``, only the sub-command it names.

    NOTE: importing a sub-command's module imports what it runs with
    (``publish`` and ``run``: oslo.log, keystoneauth, openstacksdk: a
    tenth of a second); ``discover`` on a compute node needs none of it.
    Without a known sub-command in ``argv`` (``--help``, a typo) every
    sub-command is registered, for the help text and the error.
    """
    parser = argparse.ArgumentParser(
        prog='gpu-passthrough-agent',
        description='Discover the GPU/PCI inventory of this compute node '
                    'and publish it to nova and Placement.')
    parser.add_argument('--version', action=_VersionAction, nargs=0,
                        help="show program's version number and exit")
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    # The top level takes only flags: its first other word is the command.
    words = [arg for arg in (argv or ()) if not arg.startswith('-')]
    command = words[0] if words else None
    modules = ([SUBCOMMANDS[command]] if command in SUBCOMMANDS
               else SUBCOMMAND_MODULES)
    for name in modules:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
