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

extensions = [
    'openstackdocstheme',
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
]

# The sample files are generated at build time from the option definitions,
# so the published samples cannot drift from the code.
config_generator_config_file = [
    ('../../etc/gpu-passthrough-filter/scheduler-config-generator.conf',
     '_static/nova-scheduler'),
    ('../../etc/gpu-passthrough-filter/agent-config-generator.conf',
     '_static/gpu-passthrough-agent'),
]

openstackdocs_repo_name = 'x/gpu-passthrough-filter'
openstackdocs_bug_project = 'gpu-passthrough-filter'
openstackdocs_bug_tag = 'doc'
openstackdocs_auto_name = False

project = 'gpu-passthrough-filter'
copyright = '2026, The gpu-passthrough-filter Authors'
master_doc = 'index'
source_suffix = '.rst'
exclude_patterns = []
pygments_style = 'native'
html_theme = 'openstackdocs'
html_static_path = ['_static']
