extends RefCounted
## The export plugin's decisions (npc_export_plugin.gd), called directly: which exports get the
## bundle, where it goes, and what stops an export. tests/test_godot_export.py runs a real
## headless export with the same plugin.

const PLUGIN := preload("res://addons/npc_engine/npc_export_plugin.gd")

var h  # the runner (run_tests.gd)


func _bundle(os: String, machine: String) -> String:
	var folder := OS.get_temp_dir().path_join("npc-export-test-%d" % Time.get_ticks_usec())
	DirAccess.make_dir_recursive_absolute(folder)
	var manifest := {"format": 1, "executable": "npc-engine-server", "os": os, "machine": machine}
	var file := FileAccess.open(folder.path_join("bundle.json"), FileAccess.WRITE)
	file.store_string(JSON.stringify(manifest))
	file.close()
	return folder


func test_desktop_exports_get_the_bundle_beside_the_executable() -> void:
	var linux := _bundle("linux", "x86_64")
	var plan := PLUGIN.plan_export(
		PackedStringArray(["pc", "linux", "x86_64"]), "/games/out/tavern", linux
	)
	h.check(plan.get("destination") == "/games/out/npc-engine", "linux: beside the game, %s" % plan)
	var mac := _bundle("macos", "x86_64")
	var features := PackedStringArray(["macos", "universal"])
	plan = PLUGIN.plan_export(features, "/games/Tavern.app", mac)
	h.check(
		plan.get("destination") == "/games/Tavern.app/Contents/MacOS/npc-engine",
		"macos: inside the .app, %s" % plan
	)
	plan = PLUGIN.plan_export(features, "/games/Tavern.zip", mac)
	h.check(plan.has("error") and "a .app" in plan["error"], "macos zip: refused, %s" % plan)


func test_mobile_and_web_exports_leave_the_bundle_out() -> void:
	var linux := _bundle("linux", "x86_64")
	for features in [["web", "wasm32"], ["android", "arm64"], ["ios", "arm64"]]:
		var plan := PLUGIN.plan_export(PackedStringArray(features), "/games/out/index.html", linux)
		h.check(
			not plan.has("destination") and not plan.has("error") and plan.has("note"),
			"%s: left out, %s" % [features, plan]
		)


func test_a_missing_bundle_warns_and_a_foreign_one_stops_the_export() -> void:
	var features := PackedStringArray(["pc", "linux", "x86_64"])
	var plan := PLUGIN.plan_export(features, "/out/game", "/nonexistent/npc-engine")
	h.check(plan.has("warning") and not plan.has("error"), "no bundle: a warning, %s" % plan)
	plan = PLUGIN.plan_export(features, "/out/game", _bundle("linux", "aarch64"))
	h.check(
		plan.get("needed") == "a linux x86_64 bundle" and "arm64 CPUs" in plan.get("error", ""),
		"arm64 bundle for x86_64: stopped, %s" % plan
	)
	plan = PLUGIN.plan_export(
		PackedStringArray(["pc", "windows", "x86_64"]), "/out/game.exe", _bundle("linux", "x86_64")
	)
	h.check("built on linux" in plan.get("error", ""), "linux bundle for windows: %s" % plan)


func test_architectures_in_one_spelling() -> void:
	h.check(PLUGIN.normalize_machine("AMD64") == "x86_64", "AMD64")
	h.check(PLUGIN.normalize_machine("aarch64") == "arm64", "aarch64")
	h.check(PLUGIN.normalize_machine("i686") == "x86", "i686")
	var intel := {"os": "macos", "machine": "x86_64"}
	var silicon := {"os": "macos", "machine": "arm64"}
	h.check(PLUGIN.problem_for(intel, "macos", "arm64") == "", "Rosetta runs x86_64 on arm64")
	h.check(PLUGIN.problem_for(intel, "macos", "universal") == "", "x86_64 runs on every Mac")
	h.check(PLUGIN.problem_for(silicon, "macos", "universal") != "", "arm64 leaves Intel Macs out")
