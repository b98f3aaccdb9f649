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
"""What the agent's ``publish`` and ``run`` share.

The config-file arguments, loading and logging set-up, the fallback
logging when the configuration cannot be read, and the exit statuses.
"""

from oslo_config import cfg
from oslo_log import log as logging

from gpu_passthrough_filter.agent import daemon

EXIT_OK = 0
EXIT_FAILED = 1
#: Published, and the settings of the nova config file changed: restart
#: nova-compute (a change to its comments alone does not count).
EXIT_RESTART_NOVA = 3


def add_config_arguments(parser):
    """``--config-file`` and ``--config-dir``, as oslo.config has them.

    :param parser: an argparse (sub-)parser.
    """
    parser.add_argument(
        '--config-file', action='append', default=[], metavar='PATH',
        help='Agent configuration file; may be repeated, later files '
             'override earlier ones (default: %s if it exists).'
             % daemon.DEFAULT_CONFIG_FILE)
    parser.add_argument(
        '--config-dir', action='append', default=[], metavar='DIR',
        help='Directory of *.conf files read after the config files.')


def load(args):
    """Configuration from the parsed ``args``, logging set up.

    :raises exception.ConfigError: invalid configuration.
    """
    conf = daemon.build_conf(args.config_file, args.config_dir)
    logging.setup(conf, 'gpu-passthrough-agent')
    return conf


def setup_fallback_logging():
    """Log to stderr when the configuration could not even be read."""
    conf = cfg.ConfigOpts()
    logging.register_options(conf)
    conf([], default_config_files=[])
    logging.setup(conf, 'gpu-passthrough-agent')
