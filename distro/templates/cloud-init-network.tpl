{% if config_get("cloud-init.network-config", "") == "" %}version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - type: dhcp
        control: auto
{% else %}{{ config_get("cloud-init.network-config", "") }}{% endif %}
