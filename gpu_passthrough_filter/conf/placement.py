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
"""``[placement]``: how the agent reaches Placement.

Authentication and session options are keystoneauth's own, loaded the
standard way (as nova's ``[placement]`` group does), so every auth plugin
works: ``password``, ``v3applicationcredential``, ``admin_token`` (tests),
and so on.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

GROUP = cfg.OptGroup(
    'placement',
    title='Placement service',
    help='Credentials and endpoint of the Placement API for the agent.')

OPTS = [
    cfg.StrOpt(
        'cloud',
        help="""
Name of a cloud in ``clouds.yaml`` to use instead of the keystoneauth
options of this group. Unset: use the options of this group.
"""),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)
    ks_loading.register_session_conf_options(conf, GROUP.name)
    ks_loading.register_auth_conf_options(conf, GROUP.name)
    ks_loading.register_adapter_conf_options(
        conf, GROUP.name, include_deprecated=False)


def _keystoneauth_opts():
    opts = (ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options('password')
            + ks_loading.get_auth_plugin_conf_options(
                'v3applicationcredential')
            + ks_loading.get_adapter_conf_options(include_deprecated=False))
    unique = {}
    for opt in opts:
        unique.setdefault(opt.dest, opt)
    return sorted(unique.values(), key=lambda opt: opt.dest)


def list_opts():
    return {GROUP: OPTS + _keystoneauth_opts()}
