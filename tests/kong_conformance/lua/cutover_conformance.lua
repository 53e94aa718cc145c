-- cutover's conformance glue: Kong's own DNS client behind two HTTP endpoints, nothing of Kong re-implemented.
--
-- init(path): reads a kong.conf-style table (the dns_* / resolver_* keys after Kong's conf_loader,
--   JSON null for NONE) and hands it to Kong's own kong/tools/dns.lua, which is what Kong's
--   conf_loader does. That function maps the keys onto client.init{} and picks the new client
--   when the shared dict kong_dns_cache exists (new_dns_client = on), the legacy one otherwise.
-- GET /resolve?name=X: client.toip(X, 80), the call Kong's balancer makes for a Service host that is
--   not an Upstream (kong/runloop/balancer/init.lua, execute()); answers {ip, port} or {err}.
-- GET /info: which client runs, and the nginx / ngx_lua versions.

local cjson = require "cjson.safe"

local M = {}

local client

local function load_conf(path)
  local file = assert(io.open(path, "rb"))
  local conf = assert(cjson.decode(file:read("*a")))
  file:close()
  for key, value in pairs(conf) do
    if value == cjson.null then
      conf[key] = nil  -- a NONE setting is absent from Kong's parsed configuration
    end
  end
  return conf
end

function M.init(path)
  client = assert(require("kong.tools.dns")(load_conf(path)))
end

local function new_client()
  return ngx.shared.kong_dns_cache ~= nil
end

-- The new client counts every stale answer it serves per "name|A/AAAA" (kong/dns/stats.lua);
-- the legacy client writes "stale" into its try list.
local function stale_count(name)
  local stats = client.stats()
  local entry = stats and stats[string.lower(name) .. "|A/AAAA"]
  return entry and entry.stale or 0
end

function M.resolve()
  local name = ngx.var.arg_name
  local before = new_client() and stale_count(name) or 0
  local ok, ip, port_or_err, tries = pcall(client.toip, name, 80)
  local answer = { name = name }
  if not ok then
    answer.err = "lua error: " .. tostring(ip)
  elseif ip then
    answer.ip, answer.port = ip, port_or_err
  else
    answer.err = tostring(port_or_err)
  end
  answer.tries = tostring(tries)
  if new_client() then
    answer.stale = stale_count(name) > before
  else
    answer.stale = string.find(tostring(tries), "stale", 1, true) ~= nil
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(answer))
end

function M.info()
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode({
    client = new_client() and "new" or "legacy",
    nginx = ngx.config.nginx_version,
    ngx_lua = ngx.config.ngx_lua_version,
  }))
end

return M
