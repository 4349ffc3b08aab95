"""Checks MQTT discovery payloads with Home Assistant's own schemas.

    python ha_schema.py CONFIGS.json

CONFIGS.json maps each discovery config topic
(`PREFIX/COMPONENT/NODE/OBJECT/config`) to its payload (JSON text). Each
payload goes through the DISCOVERY_SCHEMA of its component in Home
Assistant's MQTT integration (PyPI `homeassistant`, in the venv
deploy/setup.sh makes): a payload it refuses, or one with a key it drops as
unknown, fails the check. Prints one line per payload.
"""

import json
import sys

from homeassistant.components.mqtt import binary_sensor, camera, sensor

SCHEMAS = {
    "sensor": sensor.DISCOVERY_SCHEMA,
    "binary_sensor": binary_sensor.DISCOVERY_SCHEMA,
    "camera": camera.DISCOVERY_SCHEMA,
}


def main(path):
    ok = True
    with open(path, encoding="utf-8") as f:
        configs = json.load(f)
    for topic, payload in sorted(configs.items()):
        component = topic.split("/")[1]
        config = json.loads(payload)
        config["platform"] = "mqtt"
        try:
            checked = SCHEMAS[component](dict(config))
        except Exception as e:  # voluptuous.Invalid, or an unknown component
            ok = False
            print(f"refused {topic}: {e}")
            continue
        # Unknown keys are removed, not refused; `origin` is read before the
        # schema is applied.
        dropped = sorted(set(config) - set(checked) - {"platform", "origin"})
        if dropped:
            ok = False
            print(f"unknown keys in {topic}: {dropped}")
        else:
            print(f"valid   {topic}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
