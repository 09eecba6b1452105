"""Write scenarios/foaming_line.yaml: a polyurethane moulded-foam line with 208 process parameters.

Eight stations (mould preparation, insert loading, mixing head, curing carousel, demoulding,
crushing, trimming, inspection) with 26 setpoints each. Only twelve of them matter strongly
(:data:`IMPORTANT`); their physics is written out in :data:`STATIONS` and in the scenario's header.
Every other setpoint is a *minor* one: a small quadratic yield loss around an optimum close to
today's value (within ±10 % of its range, drawn with a fixed seed) and, for some, a small share of
the station's busy power. One minor alone hardly shows; all of them far from today's values cost
a good part of the yield, which is what makes a 208-dimensional search hard.

The file is generated (so the 196 minor terms stay consistent with their parameters) and shipped;
re-running this script with the same seed rewrites the same file.

    python benchmarks/make_foaming_line.py [--seed 14]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "scenarios" / "foaming_line.yaml"

#: The parameters that matter strongly (station.parameter): the screening tests' ground truth.
IMPORTANT = (
    "mould_prep.release_agent_g",
    "mixing_head.iso_index", "mixing_head.polyol_temp_c", "mixing_head.iso_temp_c",
    "mixing_head.pressure_polyol_bar", "mixing_head.pressure_iso_bar", "mixing_head.output_g_s",
    "mixing_head.shot_time_s",
    "curing.cure_time_s", "curing.mould_temp_c", "curing.clamp_pressure_bar",
    "crushing.crush_pct",
)

MANUAL = ("demoulding", "trimming")

# station: (machines, buffer, process time mean s, cycle_time_factor, yield penalty, power kW,
#           important parameters (name, unit, min, max, today, description), minor parameter names+units)
STATIONS: dict[str, dict] = {
    "mould_prep": {
        "machines": 1, "buffer": 2, "time": 26.0,
        "ctf": "(22 + 0.4 * release_agent_g) / 24.8",
        # too little release agent: the skin sticks and tears at demoulding; too much: surface marks
        "yield": "0.35 * logistic((3.8 - release_agent_g) / 0.35) + 0.004 * max(release_agent_g - 6, 0) ** 2",
        "power": "0.8",
        "important": [("release_agent_g", "g", 2.0, 12.0, 7.0, "release agent sprayed per mould")],
        "minor": [("spray_pressure_bar", "bar"), ("spray_distance_mm", "mm"), ("spray_pattern_deg", "°"),
                  ("nozzle_temp_c", "°C"), ("agent_dilution_pct", "%"), ("flash_off_s", "s"),
                  ("mould_blow_air_bar", "bar"), ("blow_time_s", "s"), ("robot_speed_pct", "%"),
                  ("wax_build_limit", "shots"), ("vent_clean_interval", "shots"), ("gun_purge_s", "s"),
                  ("atomising_air_bar", "bar"), ("fan_air_bar", "bar"), ("spray_overlap_pct", "%"),
                  ("booth_extract_pct", "%"), ("booth_temp_c", "°C"), ("agent_tank_temp_c", "°C"),
                  ("agent_pump_bar", "bar"), ("gun_trigger_lead_ms", "ms"), ("gun_trigger_lag_ms", "ms"),
                  ("path_offset_mm", "mm"), ("mould_clean_interval", "shots"), ("brush_speed_rpm", "rpm"),
                  ("dry_time_s", "s")],
    },
    "insert_loading": {
        "machines": 1, "buffer": 2, "time": 24.0, "ctf": "1", "yield": "0", "power": "0.6", "important": [],
        "minor": [("gripper_pressure_bar", "bar"), ("place_force_n", "N"), ("place_speed_pct", "%"),
                  ("frame_preheat_c", "°C"), ("magnet_current_a", "A"), ("vision_exposure_ms", "ms"),
                  ("vision_threshold", "grey"), ("feeder_rate_pct", "%"), ("clip_torque_ncm", "N·cm"),
                  ("approach_height_mm", "mm"), ("retract_speed_pct", "%"), ("pick_dwell_ms", "ms"),
                  ("place_dwell_ms", "ms"), ("scrim_tension_n", "N"), ("scrim_cut_offset_mm", "mm"),
                  ("label_position_mm", "mm"), ("felt_pad_pressure_bar", "bar"), ("vacuum_level_kpa", "kPa"),
                  ("feeder_vibration_hz", "Hz"), ("buffer_rack_speed_pct", "%"), ("insert_temp_limit_c", "°C"),
                  ("check_force_n", "N"), ("wire_straighten_pct", "%"), ("hook_angle_deg", "°"),
                  ("robot_payload_kg", "kg"), ("tool_change_s", "s")],
    },
    "mixing_head": {
        "machines": 1, "buffer": 2, "time": 29.2,
        "ctf": "(24 + shot_time_s) / 29.2",
        # shot weight against the 1250 g the mould needs; the iso index the head really delivers drifts
        # with the pressure imbalance; its best value shifts with the chemicals' temperatures;
        # impingement mixing needs both pressures high
        "yield": ("0.5 * (1 - exp(-((output_g_s * shot_time_s / 1250 - 1) / 0.04) ** 2))"
                  " + 0.45 * (1 - exp(-(((iso_index * (1 + 0.2 * (pressure_iso_bar - pressure_polyol_bar) / 150))"
                  " - (104 + 0.35 * (polyol_temp_c - 22) + 0.25 * (iso_temp_c - 24))) / 4) ** 2))"
                  " + 0.15 * logistic((125 - min(pressure_polyol_bar, pressure_iso_bar)) / 6)"
                  " + 0.0015 * (polyol_temp_c - 25) ** 2 + 0.001 * (iso_temp_c - 26) ** 2"),
        "power": "3.0 + 0.01 * (pressure_polyol_bar + pressure_iso_bar) + 0.12 * (polyol_temp_c + iso_temp_c - 36)",
        "important": [("iso_index", "index", 90.0, 120.0, 103.5, "isocyanate index (ratio, 100 = stoichiometric)"),
                      ("polyol_temp_c", "°C", 18.0, 32.0, 22.0, "polyol day-tank temperature"),
                      ("iso_temp_c", "°C", 18.0, 32.0, 24.0, "isocyanate day-tank temperature"),
                      ("pressure_polyol_bar", "bar", 100.0, 200.0, 150.0, "polyol injection pressure"),
                      ("pressure_iso_bar", "bar", 100.0, 200.0, 145.0, "isocyanate injection pressure"),
                      ("output_g_s", "g/s", 150.0, 350.0, 250.0, "mixing-head output"),
                      ("shot_time_s", "s", 3.0, 8.0, 5.05, "shot time per mould")],
        "minor": [("recirc_pressure_bar", "bar"), ("hydraulic_oil_temp_c", "°C"), ("hydraulic_pressure_bar", "bar"),
                  ("polyol_tank_level_pct", "%"), ("iso_tank_level_pct", "%"), ("dry_air_dewpoint_c", "°C"),
                  ("nitrogen_blanket_mbar", "mbar"), ("agitator_speed_rpm", "rpm"), ("open_delay_ms", "ms"),
                  ("close_delay_ms", "ms"), ("pour_lead_ms", "ms"), ("polyol_recirc_flow_l_min", "l/min"),
                  ("iso_recirc_flow_l_min", "l/min"), ("pigment_dose_pct", "%"), ("cleaning_piston_delay_ms", "ms"),
                  ("filter_dp_limit_bar", "bar"), ("pour_path_speed_mm_s", "mm/s"), ("pour_height_mm", "mm"),
                  ("head_tilt_deg", "°")],
    },
    "curing": {
        "machines": 8, "buffer": 3, "time": 340.0,
        "ctf": "(cure_time_s + 40) / 340",
        # degree of cure at demoulding (1 = today's 300 s at 55 °C, doubling every ~11.5 °C); below ~0.8
        # the pad tears; a hot mould scorches the skin, a cold one leaves voids; low clamp pressure flashes
        "yield": ("0.6 * logistic((0.8 - (cure_time_s / 300) * exp(0.06 * (mould_temp_c - 55))) / 0.03)"
                  " + 0.004 * max(mould_temp_c - 63, 0) ** 2 + 0.003 * max(50 - mould_temp_c, 0) ** 2"
                  " + 0.05 * max(4 - clamp_pressure_bar, 0) ** 2"),
        "power": "5.0 + 0.2 * (mould_temp_c - 20) + 0.1 * clamp_pressure_bar",
        "important": [("cure_time_s", "s", 180.0, 420.0, 300.0, "in-mould cure time"),
                      ("mould_temp_c", "°C", 40.0, 75.0, 55.0, "mould water-heater setpoint"),
                      ("clamp_pressure_bar", "bar", 2.0, 8.0, 4.5, "lid clamp pressure")],
        "minor": [*[(f"lid_zone_{i}_offset_c", "°C") for i in range(1, 5)],
                  *[(f"bottom_zone_{i}_offset_c", "°C") for i in range(1, 5)],
                  ("water_flow_l_min", "l/min"), ("heater_pid_p", "gain"), ("heater_pid_i_s", "s"),
                  ("lid_close_speed_pct", "%"), ("lid_open_speed_pct", "%"), ("vent_valve_delay_s", "s"),
                  ("carrier_speed_m_min", "m/min"), ("lid_seal_pressure_bar", "bar"), ("vent_open_s", "s"),
                  ("oven_air_temp_c", "°C"), ("oven_fan_pct", "%"), ("exhaust_pct", "%"),
                  ("mould_lock_bar", "bar"), ("index_accel_pct", "%"), ("water_return_limit_c", "°C"),
                  ],
    },
    "demoulding": {
        "machines": 1, "buffer": 2, "time": 27.0, "ctf": "1", "yield": "0", "power": "1.5", "important": [],
        "minor": [("gripper_vacuum_kpa", "kPa"), ("peel_speed_pct", "%"), ("peel_angle_deg", "°"),
                  ("air_assist_bar", "bar"), ("lid_open_angle_deg", "°"), ("lift_speed_pct", "%"),
                  ("hold_time_s", "s"), ("finger_force_n", "N"), ("blow_off_bar", "bar"),
                  ("conveyor_speed_m_min", "m/min"), ("robot_path_offset_mm", "mm"), ("ejector_stroke_mm", "mm"),
                  ("ejector_delay_ms", "ms"), ("gripper_pad_temp_c", "°C"), ("release_check_n", "N"),
                  ("cooling_air_pct", "%"), ("pad_flip_speed_pct", "%"), ("place_height_mm", "mm"),
                  ("vision_gain", "dB"), ("label_press_n", "N"), ("tray_pitch_mm", "mm"),
                  ("lift_accel_pct", "%"), ("vacuum_release_ms", "ms"), ("demould_wait_s", "s"),
                  ("rack_speed_pct", "%"), ("blow_off_s", "s")],
    },
    "crushing": {
        "machines": 1, "buffer": 2, "time": 22.0, "ctf": "1",
        # open the closed cells: too little crush and the pad shrinks, too much and it tears
        "yield": "0.4 * (1 - exp(-((crush_pct - 72) / 8) ** 2))",
        "power": "2.0 + 0.02 * crush_pct",
        "important": [("crush_pct", "%", 40.0, 90.0, 70.0, "roller crush as share of pad thickness")],
        "minor": [("roller_speed_m_min", "m/min"), ("roller_temp_c", "°C"), ("passes", "passes"),
                  ("vacuum_crush_kpa", "kPa"), ("infeed_speed_pct", "%"), ("roller_gap_trim_mm", "mm"),
                  ("outfeed_speed_pct", "%"), ("belt_tension_n", "N"), ("pad_temp_limit_c", "°C"),
                  ("dwell_ms", "ms"), ("top_roller_pressure_bar", "bar"), ("bottom_roller_pressure_bar", "bar"),
                  ("roller_surface_rpm_trim_pct", "%"), ("guide_width_mm", "mm"), ("alignment_offset_mm", "mm"),
                  ("cooling_fan_pct", "%"), ("second_pass_gap_pct", "%"), ("pad_count_gap_s", "s"),
                  ("roller_clean_interval", "pads"), ("humidity_limit_pct", "%"), ("nip_angle_deg", "°"),
                  ("torque_limit_pct", "%"), ("retract_speed_pct", "%"), ("conveyor_gap_mm", "mm"),
                  ("reversal_delay_ms", "ms")],
    },
    "trimming": {
        "machines": 1, "buffer": 2, "time": 25.0, "ctf": "1", "yield": "0", "power": "1.2", "important": [],
        "minor": [("knife_speed_mm_s", "mm/s"), ("knife_temp_c", "°C"), ("knife_angle_deg", "°"),
                  ("hold_down_bar", "bar"), ("waterjet_pressure_bar", "bar"), ("waterjet_speed_mm_s", "mm/s"),
                  ("nozzle_standoff_mm", "mm"), ("flash_brush_rpm", "rpm"), ("brush_depth_mm", "mm"),
                  ("table_vacuum_kpa", "kPa"), ("path_offset_mm", "mm"), ("corner_slowdown_pct", "%"),
                  ("dust_extract_pct", "%"), ("blade_change_interval", "pads"), ("fixture_clamp_bar", "bar"),
                  ("scrap_chute_delay_s", "s"), ("vision_threshold", "grey"), ("robot_speed_pct", "%"),
                  ("tool_preload_n", "N"), ("sharpen_interval", "pads"), ("edge_radius_mm", "mm"),
                  ("pierce_delay_ms", "ms"), ("cut_depth_mm", "mm"), ("table_index_s", "s"),
                  ("air_knife_bar", "bar"), ("sensor_offset_mm", "mm")],
    },
    "inspection": {
        "machines": 1, "buffer": 2, "time": 20.0, "ctf": "1", "yield": "0", "power": "0.7", "important": [],
        "minor": [("camera_exposure_ms", "ms"), ("camera_gain_db", "dB"), ("light_intensity_pct", "%"),
                  ("reject_threshold", "score"), ("hardness_probe_n", "N"), ("probe_depth_mm", "mm"),
                  ("weigh_tolerance_g", "g"), ("scan_speed_mm_s", "mm/s"), ("conveyor_speed_m_min", "m/min"),
                  ("air_temp_c", "°C"), ("laser_power_pct", "%"), ("profile_tolerance_mm", "mm"),
                  ("sample_interval", "pads"), ("label_delay_ms", "ms"), ("reject_gate_ms", "ms"),
                  ("uv_lamp_pct", "%"), ("thermal_camera_c", "°C"), ("odour_sensor_ppm", "ppm"),
                  ("barcode_retries", "tries"), ("stack_height", "pads"), ("pack_speed_pct", "%"),
                  ("rejected_hold_s", "s"), ("lab_sample_interval", "pads"), ("vision_roi_mm", "mm"),
                  ("flatness_tolerance_mm", "mm"), ("density_check_interval", "pads")],
    },
}

HEADER = """\
# Polyurethane moulded-foam line (car seat cushions), GENERATED by benchmarks/make_foaming_line.py
# (edit the script, not this file). Eight stations, 26 setpoints each: 208 process parameters.
#
# Pads flow mould_prep → insert_loading → mixing_head → curing (a carousel of 8 moulds) →
# demoulding → crushing → trimming → inspection. Times in seconds; the mixing head (29 s) and
# the curing carousel ((cure_time + 40 s) / 8 moulds, 42.5 s today) set the pace.
#
# Only twelve setpoints matter strongly (the rest are "minor", see below):
#  - mould_prep.release_agent_g: below ~4 g the skin sticks and tears (logistic, up to 35 %
#    scrap), above 6 g surface marks; spraying takes 0.4 s per gram.
#  - mixing_head: shot weight output_g_s × shot_time_s against the 1250 g the mould needs
#    (Gaussian tolerance ±4 %, up to 50 % scrap; today 1262 g); the iso index the head
#    delivers drifts with the pressure imbalance (× (1 + 0.2 (p_iso − p_polyol)/150)) and the best
#    index is 104 + 0.35 (T_polyol − 22) + 0.25 (T_iso − 24) (Gaussian tolerance ±4 on a 90–120
#    range: a narrow window, up to 45 % scrap; today 102.8 delivered); impingement mixing needs
#    both pressures above ~125 bar; warm chemicals cost heater power and a little quality.
#    Cycle: 24 s handling + the shot.
#  - curing: degree of cure (cure_time_s / 300) × exp(0.06 (mould_temp_c − 55)); below ~0.8 pads
#    tear at demoulding (logistic, up to 60 %); moulds above 63 °C scorch the skin, below 50 °C
#    leave voids; clamp pressure below 4 bar flashes. Mould heating costs power. A short cure on a
#    hot mould speeds the carousel up until the mixing head is the bottleneck.
#  - crushing.crush_pct: the cells open best at 72 % crush (Gaussian tolerance ±8 %, up to 40 %; today 70 %).
# Minor setpoints (196): each adds w × ((x − c) / range)² to its station's scrap share, w in
# 0.1–0.4 %, with an optimum c within ±10 % of the range from today's value; about a third also
# draw up to 0.3 kW of busy power. Together, far from today's values, they cost a lot of yield.
# Economics: 9.00 EUR margin per good pad, 6.00 EUR per scrapped one; electricity 0.20 EUR/kWh.
"""


def minor_bounds(name: str, unit: str, rng: np.random.Generator) -> tuple[float, float, float]:
    """Plausible bounds and today's value for a minor setpoint, by its unit."""
    spans = {"bar": (0.5, 8.0), "%": (0.0, 100.0), "°C": (15.0, 80.0), "ms": (0.0, 500.0), "s": (0.0, 30.0),
             "mm": (0.0, 100.0), "mm/s": (20.0, 400.0), "rpm": (100.0, 3000.0), "N": (5.0, 400.0),
             "kPa": (-90.0, -20.0), "°": (0.0, 90.0), "m/min": (1.0, 20.0), "l/min": (5.0, 60.0)}
    lo, hi = spans.get(unit, (1.0, 50.0))
    if name.endswith("_offset_c"):
        lo, hi = -5.0, 5.0
    today = lo + (hi - lo) * float(rng.uniform(0.3, 0.7))
    return lo, hi, today


def build(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    stations = []
    for name, st in STATIONS.items():
        params, yield_terms, power_terms = [], [], []
        for pname, unit, lo, hi, today, desc in st["important"]:
            params.append({"name": pname, "unit": unit, "min": lo, "max": hi, "default": today, "description": desc})
        for pname, unit in st["minor"]:
            lo, hi, today = minor_bounds(pname, unit, rng)
            span = hi - lo
            c = float(np.clip(today + rng.uniform(-0.1, 0.1) * span, lo, hi))
            w = float(rng.uniform(0.001, 0.004))
            yield_terms.append(f"{w:.4f} * ((({pname}) - ({c:.4g})) / {span:.4g}) ** 2")
            if rng.random() < 1 / 3:
                power_terms.append(f"{rng.uniform(0.05, 0.3):.3f} * (({pname}) - ({lo:.4g})) / {span:.4g}")
            params.append({"name": pname, "unit": unit, "min": round(lo, 4), "max": round(hi, 4),
                           "default": round(today, 3)})
        assert len(params) == 26, (name, len(params))
        penalty = " + ".join([st["yield"], *yield_terms])
        response = {"cycle_time_factor": st["ctf"], "yield": f"1 - min(0.008 + {penalty}, 0.95)",
                    "power_kw": " + ".join([st["power"], *power_terms])}
        stations.append({
            "name": name, "buffer": st["buffer"], "machines": st["machines"],
            # robots and the carousel run fixed cycles; people help at demoulding and trimming
            "process_time": ({"dist": "normal", "mean": st["time"], "sd": round(0.04 * st["time"], 3)}
                             if name in MANUAL else {"dist": "constant", "value": st["time"]}),
            "parameters": params, "response": response,
            "energy": {"power_kw": {"idle": round(0.4 * float(eval_const(st["power"])), 3), "busy": 1.0}},
        })
    return {
        "name": "foaming_line",
        "description": "Polyurethane moulded-foam line: 8 stations, 208 process parameters, 12 of them matter.",
        "time_unit": "s", "start_clock": "06:00",
        "horizon": {"length": 7800, "warmup": 600},
        "replications": 5,
        "products": [{"name": "cushion", "route": list(STATIONS)}],
        "sources": [{"kind": "saturated", "name": "mould_line"}],
        "stations": stations,
        "tariff": {"currency": "EUR", "default_price": 0.20},
        "co2_kg_per_kwh": 0.38,
        "economics": {"margin_per_unit": 9.0, "scrap_cost": 6.0},
    }


def eval_const(text: str) -> float:
    """The constant leading term of a power expression (the idle power is 40 % of it)."""
    return float(text.split("+")[0].strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    data = build(args.seed)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100000)
    Path(args.out).write_text(HEADER + text)
    n = sum(len(s["parameters"]) for s in data["stations"])
    print(f"wrote {args.out}: {len(data['stations'])} stations, {n} process parameters")


if __name__ == "__main__":
    main()
