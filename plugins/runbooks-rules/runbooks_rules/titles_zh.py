# ruff: noqa: RUF001, RUF002  (the Chinese text uses its own full-width punctuation)
"""The steps' titles in the manual's language (Traditional Chinese, in the manual's own terms:
網絡, 服務器, 數據庫, 設備, 配置), by runbook and step name, for the record sheets.

A title names the runbook's parameters as its English title does (``{device}``); they are
filled in from the run's parameters. A step with no Chinese title here is shown in English
alone; `missing` names them (a test keeps the library's runbooks covered). The `runbook`
command's sheets and the NetBox plugin's read them here (this package is the one both have).

>>> title("rack-in", "confirm_mounted_and_cabled", {"device": "leaf3"})
'確認 leaf3 已上架並接好線纜'
>>> title("network-remediation", "plan_remediation#2", {},
...       "Configure … — batch 2 of 3: leaf1, leaf2")
'按 NetBox 渲染的配置修正偏離的設備 — 第 2 批（共 3 批）：leaf1, leaf2'
>>> title("rack-in", "no_such_step", {})
''
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

# shared by several runbooks
_SELECT = "從 NetBox 選出 NAPALM 驅動可連接的設備"
_DRIVERS = "每台設備的驅動均能回答檢查後的查詢"
_BACKUP = "完整備份：全局對象及每個數據庫，各取一致快照"
_VERIFY_BACKUP = "驗證備份：在臨時實例中恢復並核對數據表"
_RACK_WITNESS = "在 {device} 的 NetBox 日誌中記錄本次運行（見證）"
_SERVER_WITNESS = "在服務器的 NetBox 日誌中記錄本次運行（見證）"
_DB_SERVER = "NetBox 中的數據庫服務器：其地址、PostgreSQL 端口及版本"
_APP_HOSTS = "應用系統的主機：其 NetBox 服務，且均在清單中"

# server (5) and client terminal (1) fault handling share their steps
_HOST_FAULT = {
    "host_in_inventory": "主機在 NetBox 的清單中，且有地址",
    "host_state": "主機證據：可達性、負載、內存、磁盤、服務、日誌錯誤",
    "diagnosis": "診斷：與正常主機的差異",
    "plan_remedy": "處理：重啟服務 {service}",
}

TITLES: dict[str, dict[str, str]] = {
    "db-maintenance": {
        "server_in_netbox": _DB_SERVER,
        "survey_cluster": "巡檢：版本、數據目錄、數據庫及其大小",
        "disk_headroom": "磁盤餘量：數據目錄所在文件系統的可用空間",
        "replication_lag": "複製：各副本的延遲及各複製槽保留的 WAL",
        "long_transactions": "長時間運行的事務（逐一列出）",
        "index_and_constraint_checks": "索引與約束檢查：無效索引、NOT VALID 約束、amcheck",
        "plan_backup": _BACKUP,
        "plan_verify_backup": _VERIFY_BACKUP,
        "plan_vacuum": "對各數據庫計劃內的數據表執行 VACUUM (ANALYZE)",
        "plan_journal_entry": _SERVER_WITNESS,
    },
    "db-upgrade": {
        "server_in_netbox": _DB_SERVER,
        "survey_cluster": "巡檢：版本、大小、磁盤、擴展、連接、複製",
        "pg_upgrade_check": "在臨時新集群上執行 pg_upgrade --check，校驗和設置一致",
        "announce": "向用戶通告維護及預計停機時間",
        "plan_backup": _BACKUP,
        "plan_verify_backup": _VERIFY_BACKUP,
        "plan_prepare_new": "準備新集群：以舊集群的校驗和與區域設置執行 initdb",
        "plan_stop_writers": "停止寫入：執行檢查點後停止舊集群（停機開始）",
        "plan_archive_wal": "link/swap 模式：由現在起至停止寫入期間歸檔 WAL（舊集群重啟一次）",
        "plan_base_backup": "link/swap 模式：基礎備份（pg_basebackup），以 pg_verifybackup 校驗",
        "plan_upgrade": "以所選模式執行 pg_upgrade，升級至新版本",
        "post_checks": "升級後檢查：版本、每個數據表的行數與校驗和、擴展",
        "plan_switch": "在新集群上開放服務（先為每個數據庫取一次快照）",
        "plan_analyze": "新集群提供服務後執行分析（vacuumdb --analyze-only）",
        "service_check": "服務以新版本應答；記錄停機時間",
        "plan_netbox_version": "NetBox：服務器的 PostgreSQL 服務記錄新版本",
        "plan_journal_entry": _SERVER_WITNESS,
    },
    "network-maintenance": {
        "select_devices": _SELECT,
        "survey_devices": (
            "備份每台設備的配置，與 NetBox 渲染的配置比對，收集設備信息、BGP、LLDP 及接口錯誤"
            "（每台設備登錄一次，每次並行 {parallel} 台）"
        ),
        "compliance_summary": "合規匯總：合規、偏離、無法連接、無法渲染",
        "plan_history_commit": "將備份提交至配置歷史庫，以一次提交記錄本次運行",
    },
    "network-remediation": {
        "select_devices": _SELECT,
        "compare_with_netbox": "將每台設備與 NetBox 渲染的配置比對",
        "drivers_can_answer": _DRIVERS,
        "plan_remediation": "按 NetBox 渲染的配置修正偏離的設備",
    },
    "pc-install": {
        "pc_on_bench": "PC 在安裝台上應答；讀取硬件與系統信息",
        "registration_inputs": "NetBox 中已有使用人、位置、租戶及可用的辦公網地址",
        "plan_registration": "在 NetBox 中登記 PC：設備、辦公網地址、使用人",
        "plan_install": "安裝 PC：主機名、辦公網絡、軟件組合、使用人帳號",
        "verify": "驗證：PC 的名稱、地址、軟件及帳號；NetBox 已登記",
        "hand_over": "移交 PC：使用人登錄、設定密碼並簽收",
        "plan_handover_record": "在 PC 的 NetBox 日誌中記錄移交",
    },
    "rack-in": {
        "device_is_planned": "{device} 在 NetBox 中為計劃或預備狀態",
        "rack_position_is_set_and_free": "其機櫃及位置已設定且空閒",
        "platform_and_type_are_known": "其平台及設備型號已知",
        "planned_cables_end_on_existing_interfaces": "其計劃線纜的兩端均為已有接口",
        "addresses_are_assigned": "其管理地址及環回地址已分配",
        "confirm_mounted_and_cabled": "確認 {device} 已上架並接好線纜",
        "device_answers": "{device} 在管理地址上應答",
        "drivers_can_answer": _DRIVERS,
        "plan_rack_position": "在 NetBox 中記錄上架位置（如有指定）",
        "plan_cables_connected": "在 NetBox 中將線纜記為已連接",
        "plan_device_config": (
            "按 NetBox 渲染的配置配置 {device} 及其線纜對端設備（平台支持時使用確認提交）"
        ),
        "verify_lldp_matches_cables": "檢查：LLDP 與 NetBox 線纜逐個接口一致",
        "verify_bgp_established": "檢查：與 NetBox 所列每個對端的 BGP 均已建立",
        "verify_loopbacks_answer": "檢查：環回地址雙向路由可達",
        "plan_confirm_config": "確認配置（所有檢查均已通過）",
        "plan_device_active": "在 NetBox 中將 {device} 及其地址標記為啟用",
        "plan_journal_entry": _RACK_WITNESS,
    },
    "rack-out": {
        "device_is_active": "{device} 在 NetBox 中為啟用狀態",
        "neighbours_keep_another_path": "每個相鄰設備均保有另一條路徑",
        "device_answers": "{device} 在管理地址上應答",
        "drivers_can_answer": "每台設備的驅動均能回答檢查的查詢",
        "keep_running_config_as_backup": "將其運行配置保存於記錄中（備份）",
        "plan_device_decommissioning": "在 NetBox 中將 {device} 標記為退役中",
        "plan_drain_bgp": "引流：關閉 {device} 的 BGP 會話",
        "wait_until_prefixes_moved_away": "等待相鄰設備不再經 {device} 轉發任何路由",
        "neighbours_still_reach_each_other": "驗證相鄰設備之間仍可互通",
        "plan_remove_configuration": "移除 {device} 的配置（平台支持時使用確認提交）",
        "device_still_answers": "檢查：{device} 仍應答，且已無 BGP 會話",
        "plan_confirm_removal": "確認移除",
        "plan_cables_decommissioning": "在 NetBox 中將 {device} 的線纜標記為退役中",
        "plan_neighbour_configs": "按 NetBox 當前渲染的配置配置相鄰設備（平台支持時使用確認提交）",
        "verify_neighbour_sessions": "檢查：相鄰設備的其他 BGP 會話均已建立",
        "plan_confirm_neighbours": "確認相鄰設備的配置",
        "plan_device_offline": "在 NetBox 中將 {device} 標記為離線並釋放其機櫃位置",
        "plan_addresses_released": "在 NetBox 中釋放 {device} 的地址（按設定）",
        "confirm_physical_removal": "確認 {device} 已實際下架",
        "plan_journal_entry": _RACK_WITNESS,
    },
    "server-maintenance": {
        "servers_in_inventory": "服務器均在 NetBox 的清單中，且有地址",
        "pre_checks": "維護前檢查：可用磁盤、內存、負載、失敗的服務、待安裝的更新",
        "plan_announcement": "在服務器的 NetBox 日誌中公告維護",
        "plan_maintenance": "操作系統軟件包更新及基線配置；按需重啟",
        "post_checks": "維護後檢查：服務正常、端口在監聽",
        "plan_completion": "在服務器的 NetBox 日誌中結束公告",
    },
    "fault-database": {
        "server_answers": "服務器應答：版本、主或備用服務器、數據庫",
        "connections": "連接：已用連接數與上限，按狀態及數據庫統計",
        "locks": "鎖：誰在等待誰，等待何物",
        "long_transactions": "長時間運行的事務（逐一列出）",
        "replication": "複製：各副本的延遲及各複製槽保留的 WAL",
        "disk": "磁盤：數據目錄所在文件系統的可用空間",
        "diagnosis": "診斷：與正常服務器的差異",
    },
    "fault-network": {
        "device_in_netbox": "NetBox 中的設備：平台、地址、線纜、應有的 BGP 會話",
        "device_state": "設備證據：設備信息、接口及錯誤、BGP、LLDP、路由、日誌",
        "diagnosis": "診斷：與 NetBox 設計意圖或正常設備的差異",
        "remedy_can_revert": "處理：{device} 能否自行撤回提交（提交確認）",
        "plan_remedy": "處理：重置與 {neighbor} 的 BGP 會話",
    },
    "fault-server": _HOST_FAULT,
    "app-maintenance": {
        "app_hosts": _APP_HOSTS,
        "release_available": "發佈包在製品目錄中，並記錄其校驗和",
        "plan_release": "逐台主機部署發佈版本，每台均做健康檢查",
    },
    "fault-application": {
        "app_hosts": _APP_HOSTS,
        "app_state": "各主機證據：服務、監聽端口、健康檢查網址、近期日誌錯誤",
        "diagnosis": "診斷：與正常應用系統的差異",
        "plan_remedy": "處理（{remedy}）：重啟服務 {app}",
    },
    "fault-terminal": _HOST_FAULT,
    "software-install": {
        "hosts_in_inventory": "主機均在 NetBox 的清單中，且有地址",
        "plan_packages": "從部門軟件倉庫安裝、升級或移除的軟件包",
        "plan_witness": "在主機的 NetBox 日誌中記錄本次運行（見證）",
    },
    "machine-room-access": {
        "room_and_escort_known": "NetBox 中有該機房及陪同人員",
        "identity_checked": "核對 {visitor}（{company}）的身份證件",
        "escort_assigned": "指派 {escort} 全程陪同",
        "entry_time": "進入機房：登記進入時間",
        "work_done": "完成工作：{purpose}",
        "exit_time": "離開機房：登記離開時間",
        "visit_times": "來訪的進入及離開時間",
    },
    "machine-room-upkeep": {
        "room_known": "NetBox 中有該機房",
        "power": "電源：UPS 及 PDU 負載",
        "cooling": "空調：溫度及濕度讀數",
        "fire": "消防：滅火器及火警報警控制盤",
        "cabling": "佈線：整齊、標籤完整、無鬆脫",
        "cleanliness": "清潔：機房清潔、無堆放雜物",
    },
    "equipment-acceptance": {
        "netbox_expects": "NetBox 中 {device} 應有的序號、型號、軟件版本及接口",
        "device_matches_netbox": "{device} 回報的信息與 NetBox 核對（任何差異即拒收）",
        "burn_in": "{device} 老化測試：接口正常、錯誤計數不增加、溫度正常",
        "plan_status": "在 NetBox 中將 {device} 標記為 {target_status}（驗收通過）",
        "plan_journal_entry": _RACK_WITNESS,
    },
}

_BATCH = re.compile(r" — batch (\d+) of (\d+)( \(canary\))?: (.*)$")


def title(runbook: str, step: str, params: Mapping[str, Any], english: str = "") -> str:
    """The Chinese title of ``step`` of ``runbook`` with ``params`` filled in ("" when it has
    none). A batch of a step (``name#2``) is the step's title and the batch its English title
    names. A parameter not given reads "—", as the English title does.

    >>> title("fault-server", "plan_remedy", {"service": None})
    '處理：重啟服務 —'
    """
    name, _, batch = step.partition("#")
    zh = TITLES.get(runbook, {}).get(name, "")
    if not zh:
        return ""
    with contextlib.suppress(KeyError, IndexError, ValueError):  # a parameter not recorded
        zh = zh.format(**{k: "—" if v is None else v for k, v in params.items()})
    found = _BATCH.search(english) if batch else None
    if found:
        n, of, canary, units = found.groups()
        zh += f" — 第 {n} 批（共 {of} 批）{'（先行批）' if canary else ''}：{units}"
    return zh


def missing(runbooks: Mapping[str, Iterable[str]]) -> list[str]:
    """The steps (``runbook: step``) of ``runbooks`` (name -> step names) with no Chinese
    title.

    >>> missing({"rack-in": ["device_answers", "new_step"]})
    ['rack-in: new_step']
    """
    return [
        f"{rb}: {step}"
        for rb, steps in runbooks.items()
        for step in steps
        if step not in TITLES.get(rb, {})
    ]
