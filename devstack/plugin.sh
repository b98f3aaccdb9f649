#!/bin/bash
#
# devstack/plugin.sh
# The gpu-passthrough-filter devstack plugin: ``source plugin.sh MODE PHASE``
# as devstack's plugin contract calls it.
#
# Where what runs:
#   nodes with n-sch or n-api:  the project installed; the filter (and
#                               weigher) enabled in $NOVA_CONF
#   nodes with gpu-pt-agent:    the project installed; the agent configured,
#                               its nova [pci] file written before
#                               nova-compute starts, the agent started
#   nodes with placement-api:   with PCI in Placement, the recommended
#                               Placement options in $PLACEMENT_CONF
#   nodes with tempest:         scheduler_enabled_filters lists the filter

GPU_PASSTHROUGH_PLUGIN_DIR=$(dirname "${BASH_SOURCE[0]}")
source "$GPU_PASSTHROUGH_PLUGIN_DIR/lib/gpu-passthrough-filter"

if [[ "$1" == "stack" && "$2" == "install" ]]; then
    if is_service_enabled n-sch n-api gpu-pt-agent placement-api; then
        echo_summary "Installing gpu-passthrough-filter"
        install_gpu_passthrough_filter
    fi

elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
    # Before any nova service starts: nova-scheduler reads its filters and
    # nova-compute its [pci] device_spec only at start.
    if is_service_enabled n-sch n-api; then
        echo_summary "Enabling GPUPassthroughFilter in nova"
        configure_gpu_passthrough_scheduler
    fi
    if is_service_enabled n-cpu; then
        configure_gpu_passthrough_compute
    fi
    if is_service_enabled placement-api; then
        configure_gpu_passthrough_placement
    fi
    if is_service_enabled gpu-pt-agent; then
        echo_summary "Configuring gpu-passthrough-agent"
        configure_gpu_passthrough_agent
        if [[ ",$GPU_PASSTHROUGH_AGENT_PUBLISHERS," == *",nova_pci,"* ]]; then
            publish_gpu_passthrough_nova_pci
        fi
    fi

elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
    if is_service_enabled gpu-pt-agent; then
        echo_summary "Starting gpu-passthrough-agent"
        start_gpu_passthrough_agent
    fi

elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
    if is_service_enabled tempest; then
        configure_gpu_passthrough_tempest
    fi
fi

if [[ "$1" == "unstack" ]]; then
    stop_gpu_passthrough_agent
fi

if [[ "$1" == "clean" ]]; then
    cleanup_gpu_passthrough_filter
fi
