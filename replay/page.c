/* page.c: the two pages `bodhi serve` answers (replay/serve.c): HTML with a small script
 * that draws on canvas itself, so nothing is fetched but the server's own JSON. */
#include "replay/replay.h"

static const char head[] =
    "<!doctype html><html><head><meta charset=utf-8><title>bodhi</title><style>"
    "body{font:14px sans-serif;margin:1em}table{border-collapse:collapse}"
    "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}"
    ".charts{display:flex;flex-wrap:wrap}.chart{margin:4px}.chart h3{font-size:13px;margin:2px}"
    ".legend span{margin-right:1em}</style></head><body>";

static const char common_js[] =
    "const C=['#1f77b4','#d62728','#2ca02c','#ff7f0e','#9467bd','#8c564b','#e377c2','#17becf'];"
    "function esc(s){return String(s).replace(/[&<>\"']/g,c=>'&#'+c.charCodeAt(0)+';')}"
    "function fmt(v){return Math.abs(v)>=1e4||(v!==0&&Math.abs(v)<1e-2)?v.toExponential(2):(+v.toFixed(3)).toString()}"
    /* lines: [{pts:[[x,y]...], color}] on canvas cv, with axes' ends written */
    "function plot(cv,lines,axes){const g=cv.getContext('2d'),W=cv.width,H=cv.height;g.clearRect(0,0,W,H);"
    "let x0=1/0,x1=-1/0,y0=1/0,y1=-1/0;for(const l of lines)for(const [x,y] of l.pts){if(!isFinite(y))continue;"
    "x0=Math.min(x0,x);x1=Math.max(x1,x);y0=Math.min(y0,y);y1=Math.max(y1,y)}"
    "if(!isFinite(x0))return;if(x1==x0)x1=x0+1;if(y1==y0){y1+=0.5;y0-=0.5}"
    "const L=axes?50:1,B=axes?16:1,sx=x=>L+(x-x0)/(x1-x0)*(W-L-4),sy=y=>H-B-(y-y0)/(y1-y0)*(H-B-4);"
    "if(axes){g.fillStyle='#555';g.font='10px sans-serif';g.fillText(fmt(y1),2,10);g.fillText(fmt(y0),2,H-B);"
    "g.fillText(fmt(x0),L,H-3);g.fillText(fmt(x1)+' steps',W-80,H-3);g.strokeStyle='#ccc';g.strokeRect(L,2,W-L-4,H-B-2)}"
    "for(const l of lines){g.strokeStyle=l.color;g.lineWidth=l.width||1.5;g.beginPath();let on=0;"
    "for(const [x,y] of l.pts){if(!isFinite(y)){on=0;continue}on?g.lineTo(sx(x),sy(y)):g.moveTo(sx(x),sy(y));on=1}g.stroke();"
    "if(l.band){g.fillStyle=l.color+'33';g.beginPath();l.band.forEach(([x,lo],i)=>i?g.lineTo(sx(x),sy(lo)):g.moveTo(sx(x),sy(lo)));"
    "for(let i=l.band.length-1;i>=0;i--)g.lineTo(sx(l.band[i][0]),sy(l.band[i][2]));g.closePath();g.fill()}}}";

static const char index_js[] =
    "<h2>bodhi runs</h2><p><button id=cmp>compare selected</button></p><table id=runs><tr><th></th><th>run</th>"
    "<th>status</th><th>phase</th><th>agents</th><th>steps</th><th>mean return</th><th>curve</th><th>sweep</th></tr></table><script>"
    "async function tick(){let rs;try{rs=await (await fetch('/api/runs')).json()}catch(e){return}"
    "const t=document.getElementById('runs'),keep=new Set([...t.querySelectorAll('input:checked')].map(i=>i.value));"
    "while(t.rows.length>1)t.deleteRow(1);for(const r of rs){const tr=t.insertRow();tr.className='run';tr.dataset.id=r.id;"
    "tr.innerHTML='<td><input type=checkbox value=\"'+esc(r.id)+'\"'+(keep.has(r.id)?' checked':'')+'></td><td><a href=\"/run?run='"
    "+encodeURIComponent(r.id)+'\">'+esc(r.path)+'</a></td><td>'+esc(r.status)+'</td><td>'+esc(r.phase)+'</td><td>'"
    "+esc(r.agents.join(', '))+'</td><td class=steps>'+r.steps+'</td><td>'+(r.mean_return===undefined?'':fmt(r.mean_return))"
    "+'</td><td><canvas width=120 height=24></canvas></td><td class=sweep></td>';"
    "const seeds=rs.filter(x=>r.sweep&&x.sweep==r.sweep);if(seeds.length>1)tr.lastChild.innerHTML='<a href=\"/run?mean=1&'"
    "+seeds.map(x=>'run='+encodeURIComponent(x.id)).join('&')+'\">'+seeds.length+' seeds</a>';"
    "plot(tr.querySelector('canvas'),[{pts:r.spark.map((v,i)=>[i,v]),color:C[0]}],0)}document.body.dataset.runs=rs.length}"
    "document.getElementById('cmp').onclick=()=>{const ids=[...document.querySelectorAll('#runs input:checked')].map(i=>i.value);"
    "if(ids.length)location.href='/run?'+ids.map(i=>'run='+encodeURIComponent(i)).join('&')};tick();setInterval(tick,3000)</script>";

/* One stream of server-sent events (/api/stream) brings every run's updates, the ones
 * written so far and then each new one, and the browser goes on from the last event's
 * offsets when it reconnects; a series is one run's agent in one phase; one chart per
 * metric, every series in it (returns, lengths, losses, KL, entropy, learning rate and
 * steps/s first, the rest by name). Runs with the same sweep key (run.yml the same but for its
 * seed: the server's rule) are a sweep's seeds: with "mean" ticked, each sweep is drawn as
 * its seeds' mean, with a band from min to max, at the steps all of them reached; a run
 * alone stays a line of its own. Above the charts, every change `bodhi set` made that a
 * brain took, with the update and step it took effect at. The page sets data-points
 * (points drawn), data-updates (updates received), data-changes (changes listed) and
 * data-status on body, and data-points on each chart. When every run has ended, the stream
 * is closed. */
static const char run_js[] =
    "<h2 id=title></h2><p><label><input type=checkbox id=mean> seeds of a sweep as mean and spread</label> "
    "<span id=info></span></p><ul id=changes></ul><div class=legend id=legend></div>"
    "<div class=charts id=charts></div><script>"
    "const q=new URLSearchParams(location.search),ids=q.getAll('run'),st=ids.map(id=>({id,s:{},c:[],sweep:'',status:''}));"
    "let nup=0,pending=0;document.getElementById('mean').checked=q.get('mean')=='1';"
    "document.getElementById('title').textContent=ids.join(' vs ');"
    "function series(){const out=[],mean=document.getElementById('mean').checked;let k=0;const byg={};"
    "for(const r of st){const g=mean&&r.sweep&&st.filter(x=>x.sweep==r.sweep).length>1?r.sweep:'';"
    "for(const key in r.s){if(g)(byg[g+' '+key]=byg[g+' '+key]||{ids:[],d:[],key}).ids.push(r.id),byg[g+' '+key].d.push(r.s[key]);"
    "else out.push({name:(ids.length>1?r.id+' ':'')+key,d:r.s[key],color:C[k++%C.length]})}}"
    "for(const g in byg){const runs=byg[g].d,d={};const ms=new Set();runs.forEach(x=>Object.keys(x).forEach(m=>ms.add(m)));"
    "for(const m of ms){const at={};for(const x of runs)for(const [s,v] of (x[m]||[]))(at[s]=at[s]||[]).push(v);"
    "d[m]=Object.keys(at).map(Number).sort((a,b)=>a-b).filter(s=>at[s].length==runs.length).map(s=>{const v=at[s];"
    "return [s,v.reduce((a,b)=>a+b,0)/v.length,Math.min(...v),Math.max(...v)]})}"
    "out.push({name:byg[g].ids.join(', ')+' '+byg[g].key+' (mean of '+runs.length+')',d,color:C[k++%C.length],mean:1})}return out}"
    "function draw(){pending=0;const ss=series(),ms=new Set();ss.forEach(x=>Object.keys(x.d).forEach(m=>ms.add(m)));"
    "const box=document.getElementById('charts');let n=0;"
    "const first=['mean_return','mean_length','policy_loss','value_loss','approx_kl','entropy','learning_rate','steps_per_s'],"
    "rank=m=>first.includes(m)?first.indexOf(m):first.length;"
    "for(const m of [...ms].sort((a,b)=>rank(a)-rank(b)||(a<b?-1:a>b))){let c=document.getElementById('c-'+m);if(!c){c=document.createElement('div');c.className='chart';"
    "c.id='c-'+m;c.innerHTML='<h3>'+esc(m)+'</h3><canvas width=420 height=200></canvas>';box.appendChild(c)}"
    "const lines=ss.filter(x=>x.d[m]).map(x=>x.mean?{pts:x.d[m].map(p=>[p[0],p[1]]),band:x.d[m],color:x.color}:{pts:x.d[m],color:x.color});"
    "c.dataset.points=lines.reduce((a,l)=>a+l.pts.length,0);n+=+c.dataset.points;plot(c.querySelector('canvas'),lines,1)}"
    "document.getElementById('legend').innerHTML=ss.map(x=>'<span style=\"color:'+x.color+'\">&#9632; '+esc(x.name)+'</span>').join('');"
    "const sts=st.map(r=>r.status||'running').join(', ');document.getElementById('info').textContent=n+' points, '+nup+' updates; '+sts;"
    "const ch=st.flatMap(r=>r.c.map(c=>(ids.length>1?r.id+' ':'')+c.phase+'/'+c.agent+': from update '+c.update+' (step '+c.steps+'): '"
    "+Object.entries(c.set).map(([k,v])=>k+'='+v).join(', ')));"
    "document.getElementById('changes').innerHTML=ch.map(x=>'<li>bodhi set, '+esc(x)+'</li>').join('');"
    "Object.assign(document.body.dataset,{points:n,updates:nup,status:sts,changes:ch.length})}"
    "function later(){if(!pending){pending=1;setTimeout(draw,250)}}"
    "const es=new EventSource('/api/stream?'+ids.map(i=>'run='+encodeURIComponent(i)).join('&'));"
    "es.addEventListener('hello',e=>{for(const h of JSON.parse(e.data).runs){const r=st.find(x=>x.id==h.run);if(r)r.sweep=h.sweep}later()});"
    "es.addEventListener('log',e=>{for(const a of JSON.parse(e.data).runs){const r=st.find(x=>x.id==a.run);if(!r)continue;"
    "if(a.reset){r.s={};r.c=[]}if(a.status)r.status=a.status;if(st.every(x=>x.status))es.close();for(const u of a.updates){nup++;const s=r.s[u.phase+'/'+u.agent]=r.s[u.phase+'/'+u.agent]||{};"
    "for(const m in u.m)(s[m]=s[m]||[]).push([u.steps,u.m[m]])}for(const c of a.changes||[])r.c.push(c)}later()});"
    "document.getElementById('mean').onchange=draw</script>";

const char *bd_serve_page(int run_page)
{
    static char index_page[sizeof head + sizeof common_js + sizeof index_js + 64];
    static char run_pg[sizeof head + sizeof common_js + sizeof run_js + 64];
    char *p = run_page ? run_pg : index_page;
    if (!p[0]) { /* the script's helpers go first, in a script of their own */
        const char *parts[] = {head, "<script>", common_js, "</script>", run_page ? run_js : index_js, "</body></html>"};
        size_t at = 0;
        for (unsigned i = 0; i < sizeof parts / sizeof *parts; i++)
            for (const char *q = parts[i]; *q; q++)
                p[at++] = *q;
        p[at] = '\0';
    }
    return p;
}
