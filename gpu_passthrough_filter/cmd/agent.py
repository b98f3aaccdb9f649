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

#: Modules providing sub-commands, in the order ``--help`` lists them.
SUBCOMMAND_MODULES = (
    'gpu_passthrough_filter.cmd.discover',
    'gpu_passthrough_filter.cmd.nova_conf',
    'gpu_passthrough_filter.cmd.placement_conf',
    'gpu_passthrough_filter.cmd.publish',
    'gpu_passthrough_filter.cmd.run',
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='gpu-passthrough-agent',
        description='Discover the GPU/PCI inventory of this compute node '
                    'and publish it to nova and Placement.')
    parser.add_argument('--version', action='version',
                        version=gpu_passthrough_filter.__version__)
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    subparsers.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
