"""The demo city's street network, written by the project itself (nothing is downloaded): a
grid of streets over the demo zones (Mitte, Kreuzberg, Prenzlauer Berg, Spandau), every fourth
one a main road, as an OSM XML file that OSRM's tools read. Small enough to prepare in
seconds; the routing engine's answers on it are real routes, not a stand-in's."""

from pathlib import Path

SOUTH, WEST, NORTH, EAST = 52.48, 13.15, 52.56, 13.46
STEP_LAT, STEP_LON = 0.0018, 0.003  # about 200 m each way
NETWORK_VERSION = "grid-1"  # change it when the generator changes: prepared data is cached by it


def demo_city_osm(path: Path) -> Path:
    rows = round((NORTH - SOUTH) / STEP_LAT) + 1
    columns = round((EAST - WEST) / STEP_LON) + 1

    def node_id(row: int, column: int) -> int:
        return 1 + row * columns + column

    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="dispatch demo city">']
    for row in range(rows):
        for column in range(columns):
            lines.append(f'<node id="{node_id(row, column)}" version="1" lat="{SOUTH + row * STEP_LAT:.7f}" lon="{WEST + column * STEP_LON:.7f}"/>')
    way_id = 1
    for row in range(rows):
        kind = "primary" if row % 4 == 0 else "residential"
        refs = "".join(f'<nd ref="{node_id(row, column)}"/>' for column in range(columns))
        lines.append(f'<way id="{way_id}" version="1">{refs}<tag k="highway" v="{kind}"/><tag k="name" v="Street {row}"/></way>')
        way_id += 1
    for column in range(columns):
        kind = "primary" if column % 4 == 0 else "residential"
        refs = "".join(f'<nd ref="{node_id(row, column)}"/>' for row in range(rows))
        lines.append(f'<way id="{way_id}" version="1">{refs}<tag k="highway" v="{kind}"/><tag k="name" v="Avenue {column}"/></way>')
        way_id += 1
    lines.append("</osm>")
    path.write_text("\n".join(lines) + "\n")
    return path
