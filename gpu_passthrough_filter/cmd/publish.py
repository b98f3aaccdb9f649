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
"""``gpu-passthrough-agent publish --once``: one discovery, one publish.

Exit status:

* ``0``: every publisher succeeded and nova-compute needs nothing;
* ``3`` (:data:`.common.EXIT_RESTART_NOVA`): every publisher succeeded and the
  settings of the nova config file changed: restart nova-compute to apply
  them (a warning line says so too; new comments alone do not count);
* ``1``: something failed (invalid configuration, sysfs unreadable,
  credentials refused, no resource provider for this host, Placement
  unreachable...), with an error line naming the cause. What could be
  published consistently was; nothing was half-published.
"""

import os

from oslo_log import log as logging

from gpu_passthrough_filter.agent import daemon
from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.cmd import common

LOG = logging.getLogger(__name__)


def add_parser(subparsers):
    """Register ``publish``.

    :param subparsers: the ``gpu-passthrough-agent`` sub-parsers.
    """
    parser = subparsers.add_parser(
        'publish',
        help='Discover the GPUs once and publish them.',
        description='Read sysfs once and run the configured publishers '
                    '([agent] publishers). Exit status: 0 done, 3 done and '
                    'the nova config file changed (restart nova-compute), '
                    '1 failed.')
    parser.add_argument(
        '--once', action='store_true',
        help='Publish once and exit: the only mode, accepted for '
             'compatibility ("run" is the daemon).')
    common.add_config_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Publish once. :returns: the exit status."""
    if not args.config_file and not args.config_dir and not os.path.exists(
            daemon.DEFAULT_CONFIG_FILE):
        # NOTE: the defaults write into /etc/nova; say so before a
        # publisher fails on a directory the operator never chose.
        common.setup_fallback_logging()
        LOG.warning('No configuration file (%s does not exist, no '
                    '--config-file): publishing with the defaults',
                    daemon.DEFAULT_CONFIG_FILE)
    try:
        conf = common.load(args)
        manager = daemon.load_publishers(conf)
    except exception.ConfigError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        # NOTE: logged outside the except block: oslo.log would append the
        # traceback of the exception being handled; the message says it all.
        common.setup_fallback_logging()
        LOG.error('%s', error)
        return common.EXIT_FAILED
    return publish_once(conf, manager)


def publish_once(conf, manager):
    """One cycle with loaded publishers. :returns: the exit status."""
    report = daemon.run_cycle(conf, manager)
    if not report.ok:
        LOG.error('publishing failed: %s', '; '.join(
            '%s: %s' % item for item in sorted(report.errors.items())))
        return common.EXIT_FAILED
    if report.restart_needed:
        return common.EXIT_RESTART_NOVA
    return common.EXIT_OK
