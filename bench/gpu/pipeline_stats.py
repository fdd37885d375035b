#!/usr/bin/env python3
"""What the machine's own Vulkan driver says of each kernel module, on a GPU machine with no Node.

    python3 bench/gpu/pipeline_stats.py DIR OUT.json [OUT.md]

DIR is what `npm run bench:export-spirv -- --out DIR` wrote (SPIR-V binaries, manifest.json and the
helper `compile_pipeline`, built from bench/isa/compile_pipeline.c). Run it with the device kit's
environment (`source /tmp/kit/env.sh`: the carried Vulkan loader and the machine's NVIDIA ICD). For
each module the helper creates the compute pipeline on the first Vulkan device and prints the
driver's statistics (VK_KHR_pipeline_executable_properties); on NVIDIA they include the register
count per invocation, which with the workgroup's shared memory decides how many warps an SM holds —
the occupancy that hides HBM's latency in a GEMV. The estimate below uses the limits of an NVIDIA
Hopper SM (H100/H200: 65,536 registers allocated per warp in units of 256, 64 warps, 32 workgroups,
228 KiB of shared memory with 1 KiB reserved per workgroup); the shared memory is the driver's own
figure where it reports one, else RADV's LDS size from the manifest (the same arrays, in RDNA's
allocation units).

Python's standard library only (the GPU machine has Python but no packages of ours).
"""
import json
import os
import re
import subprocess
import sys
import time

HOPPER = {"registers": 65536, "register_unit": 256, "warps": 64, "workgroups": 32, "shared": 228 * 1024, "reserved": 1024}


def run_helper(directory, module):
    """The helper's statistics of one module, or the error that stopped it."""
    command = [os.path.join(directory, "compile_pipeline"), os.path.join(directory, module["file"]), module["bindings"], module["entryPoint"]]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, None, str(error)
    device = re.search(r"^device: (.*)$", done.stdout, re.M)
    driver = re.search(r"^driver: (.*)$", done.stdout, re.M)
    names = (device.group(1) if device else "unknown device", driver.group(1) if driver else "unknown driver")
    if done.returncode != 0 or "compiled" not in done.stdout:
        tail = (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]
        return names, None, tail
    statistics = {}
    for match in re.finditer(r"^statistic: (.+?) = (-?[0-9.]+(?:e[-+]?[0-9]+)?|-?inf|nan)$", done.stdout, re.M):
        statistics[match.group(1)] = float(match.group(2))
    return names, statistics, None


def find(statistics, *patterns):
    """The first statistic whose name matches one of the patterns (case-insensitive), or None."""
    for pattern in patterns:
        for name, value in statistics.items():
            if re.search(pattern, name, re.I):
                return name, value
    return None


def occupancy(registers, shared_bytes, invocations):
    """Workgroups and warps per Hopper SM, and what limits them."""
    warps = max(1, -(-invocations // 32))
    per_warp = -(-int(registers) * 32 // HOPPER["register_unit"]) * HOPPER["register_unit"]
    limits = {
        "registers": HOPPER["registers"] // (per_warp * warps) if per_warp > 0 else HOPPER["workgroups"],
        "warps": HOPPER["warps"] // warps,
        "workgroups": HOPPER["workgroups"],
    }
    if shared_bytes is not None:
        limits["shared memory"] = HOPPER["shared"] // (int(shared_bytes) + HOPPER["reserved"])
    workgroups = min(limits.values())
    return {
        "workgroupsPerSm": workgroups,
        "warpsPerSm": workgroups * warps,
        "fractionOfMaxWarps": workgroups * warps / HOPPER["warps"],
        "limitedBy": [name for name, value in limits.items() if value == workgroups],
    }


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: pipeline_stats.py DIR OUT.json [OUT.md]")
    directory, json_path = sys.argv[1], sys.argv[2]
    md_path = sys.argv[3] if len(sys.argv) == 4 else None
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    rows = []
    names = None
    for module in manifest["modules"]:
        started = time.time()
        module_names, statistics, error = run_helper(directory, module)
        names = names or module_names
        row = {"keys": module["keys"], "moduleKey": module["moduleKey"], "workgroupInvocations": module["workgroupInvocations"], "seconds": round(time.time() - started, 2)}
        radv = module.get("radv", {})
        if "error" not in radv:
            row["rdna3"] = {k: radv[k] for k in ("VGPRs", "SGPRs", "LDS size", "Subgroups per SIMD", "Code size") if k in radv}
        if error is not None:
            row["error"] = error
        else:
            row["statistics"] = statistics
            registers = find(statistics, r"^register count$", r"register")
            shared = find(statistics, r"shared memory", r"^LDS size$")
            shared_bytes = shared[1] if shared else radv.get("LDS size")
            if registers is not None:
                row["occupancy"] = dict(occupancy(registers[1], shared_bytes, module["workgroupInvocations"]), registers=registers[1], sharedBytes=shared_bytes, sharedFrom=shared[0] if shared else "RADV's LDS size (manifest)")
        rows.append(row)
        print("%-40s %s" % (module["moduleKey"], row.get("error") or json.dumps(row.get("occupancy", row.get("statistics")))), flush=True)
    result = {
        "device": names[0] if names else "unknown device",
        "driver": names[1] if names else "unknown driver",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "spirvEmittedOn": manifest.get("emittedOn"),
        "spirvMade": manifest.get("made"),
        "request": manifest.get("request"),
        "occupancyModel": "NVIDIA Hopper SM: %s" % json.dumps(HOPPER),
        "modules": rows,
    }
    with open(json_path, "w") as f:
        json.dump(result, f, indent=1)
    if md_path:
        with open(md_path, "w") as f:
            f.write(markdown(result))
    print("wrote %s%s" % (json_path, " and " + md_path if md_path else ""))


def markdown(result):
    lines = [
        "# Pipeline statistics from the driver — %s" % result["device"],
        "",
        "- Driver: %s; %s; SPIR-V emitted by Dawn on %s (%s)." % (result["driver"], result["date"], result["spirvEmittedOn"], result["spirvMade"]),
        "- Occupancy: an estimate from the register count and shared memory, for an %s." % result["occupancyModel"],
        "- Made by `python3 bench/gpu/pipeline_stats.py` (bench/README.md, \"What the driver says of each kernel\").",
        "",
        "| module (report keys) | invocations | registers | shared memory (bytes) | workgroups / SM | warps / SM | limited by | RDNA3 VGPRs | other statistics |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["modules"]:
        occ = row.get("occupancy")
        other = row.get("error") or ", ".join("%s %g" % (k, v) for k, v in (row.get("statistics") or {}).items() if not re.search(r"register|shared memory|hash", k, re.I))
        lines.append("| %s (%s) | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            row["moduleKey"], ", ".join(row["keys"]), row["workgroupInvocations"],
            "%g" % occ["registers"] if occ else "—",
            "%g" % occ["sharedBytes"] if occ and occ["sharedBytes"] is not None else "—",
            occ["workgroupsPerSm"] if occ else "—",
            occ["warpsPerSm"] if occ else "—",
            ", ".join(occ["limitedBy"]) if occ else "—",
            "%g" % row["rdna3"]["VGPRs"] if "rdna3" in row and "VGPRs" in row["rdna3"] else "—",
            other or "—",
        ))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
