@tool
extends EditorPlugin
## Registers the NpcEngine autoload (an [NpcClient]) while the plugin is enabled, and the export
## plugin that puts the server bundle next to exported desktop games (npc_export_plugin.gd).

const AUTOLOAD_NAME := "NpcEngine"
const AUTOLOAD_PATH := "res://addons/npc_engine/npc_client.gd"
const EXPORT_PLUGIN := preload("res://addons/npc_engine/npc_export_plugin.gd")

var _export_plugin: EditorExportPlugin


func _enter_tree() -> void:
	_export_plugin = EXPORT_PLUGIN.new()
	add_export_plugin(_export_plugin)


func _exit_tree() -> void:
	remove_export_plugin(_export_plugin)
	_export_plugin = null


func _enable_plugin() -> void:
	add_autoload_singleton(AUTOLOAD_NAME, AUTOLOAD_PATH)


func _disable_plugin() -> void:
	remove_autoload_singleton(AUTOLOAD_NAME)
