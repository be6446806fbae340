@tool
extends EditorPlugin
## Registers the NpcEngine autoload (an [NpcClient]) while the plugin is enabled.

const AUTOLOAD_NAME := "NpcEngine"
const AUTOLOAD_PATH := "res://addons/npc_engine/npc_client.gd"


func _enable_plugin() -> void:
	add_autoload_singleton(AUTOLOAD_NAME, AUTOLOAD_PATH)


func _disable_plugin() -> void:
	remove_autoload_singleton(AUTOLOAD_NAME)
