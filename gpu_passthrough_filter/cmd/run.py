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
"""``gpu-passthrough-agent run``: the publishing daemon.

Runs :class:`~gpu_passthrough_filter.agent.daemon.Daemon` in the
foreground (systemd ``Type=simple``): discovery and publishing every
``[agent] interval`` seconds, backoff on failures, SIGTERM to stop, SIGHUP
to reload the configuration files. Exit status 1 only when the
configuration is invalid at start; 0 after SIGTERM.
"""

import functools

from oslo_log import log as logging

from gpu_passthrough_filter.agent import daemon
from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.cmd import common

LOG = logging.getLogger(__name__)


def add_parser(subparsers):
    """Register ``run``.

    :param subparsers: the ``gpu-passthrough-agent`` sub-parsers.
    """
    parser = subparsers.add_parser(
        'run',
        help='Run the publishing daemon (foreground).',
        description='Discover and publish every [agent] interval seconds, '
                    'retrying with backoff when Placement fails. SIGTERM '
                    'stops it, SIGHUP reloads the configuration files.')
    common.add_config_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run until SIGTERM. :returns: the exit status."""
    try:
        common.load(args)
    except exception.ConfigError as exc:
        return _fail(exc, logging_ready=False)
    agent = daemon.Daemon(functools.partial(
        daemon.build_conf, args.config_file, args.config_dir))
    agent.install_signal_handlers()
    try:
        agent.start()
    except exception.ConfigError as exc:
        return _fail(exc, logging_ready=True)
    return agent.run()


def _fail(error, logging_ready):
    if not logging_ready:
        common.setup_fallback_logging()
    LOG.error('%s', error)
    return common.EXIT_FAILED
